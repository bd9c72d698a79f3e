//! Converter tests on small synthetic CTranslate2 models.

use super::ct2::{self, Ct2Model, DType, Variable};
use super::*;

const D: usize = 32;
const MELS: usize = 4;
const VOCAB: usize = 8;

fn f32_var(shape: &[usize], fill: impl Fn(usize) -> f32) -> Variable {
    let n: usize = shape.iter().product();
    Variable { shape: shape.to_vec(), dtype: DType::F32, data: (0..n).flat_map(|i| fill(i).to_le_bytes()).collect() }
}

fn scalar_i16(v: i16) -> Variable {
    Variable { shape: vec![], dtype: DType::I16, data: v.to_le_bytes().to_vec() }
}

/// A 1+1 layer Whisper with d = 32 where every value encodes its position, and zero key biases.
fn tiny_model() -> Ct2Model {
    let mut m = Ct2Model { spec: "WhisperSpec".into(), spec_revision: 3, ..Default::default() };
    let mut put = |name: &str, var: Variable| {
        m.variables.insert(name.to_string(), var);
    };
    let ramp = |i: usize| i as f32 * 0.001;
    put("encoder/conv1/weight", f32_var(&[D, MELS, 3], ramp));
    put("encoder/conv1/bias", f32_var(&[D], ramp));
    put("encoder/conv2/weight", f32_var(&[D, D, 3], ramp));
    put("encoder/conv2/bias", f32_var(&[D], ramp));
    put("encoder/position_encodings/encodings", f32_var(&[1500, D], ramp));
    put("decoder/position_encodings/encodings", f32_var(&[448, D], ramp));
    put("decoder/embeddings/weight", f32_var(&[VOCAB + 3, D], ramp));
    put("encoder/num_heads", scalar_i16(2));
    put("decoder/num_heads", scalar_i16(2));
    for ln in ["encoder/layer_norm", "decoder/layer_norm"] {
        put(&format!("{ln}/gamma"), f32_var(&[D], |_| 1.0));
        put(&format!("{ln}/beta"), f32_var(&[D], |_| 0.0));
    }
    for side in ["encoder", "decoder"] {
        let l = format!("{side}/layer_0");
        let mut blocks = vec!["self_attention", "ffn"];
        if side == "decoder" {
            blocks.push("attention");
        }
        for b in blocks {
            put(&format!("{l}/{b}/layer_norm/gamma"), f32_var(&[D], |_| 1.0));
            put(&format!("{l}/{b}/layer_norm/beta"), f32_var(&[D], |_| 0.0));
        }
        // Fused Q|K|V: row r of the fused matrix holds the value r everywhere.
        put(&format!("{l}/self_attention/linear_0/weight"), f32_var(&[3 * D, D], |i| (i / D) as f32));
        put(
            &format!("{l}/self_attention/linear_0/bias"),
            f32_var(&[3 * D], |i| if (D..2 * D).contains(&i) { 0.0 } else { 1.0 + i as f32 }),
        );
        put(&format!("{l}/self_attention/linear_1/weight"), f32_var(&[D, D], ramp));
        put(&format!("{l}/self_attention/linear_1/bias"), f32_var(&[D], ramp));
        put(&format!("{l}/ffn/linear_0/weight"), f32_var(&[4 * D, D], ramp));
        put(&format!("{l}/ffn/linear_0/bias"), f32_var(&[4 * D], ramp));
        put(&format!("{l}/ffn/linear_1/weight"), f32_var(&[D, 4 * D], ramp));
        put(&format!("{l}/ffn/linear_1/bias"), f32_var(&[D], ramp));
        if side == "decoder" {
            put(&format!("{l}/attention/linear_0/weight"), f32_var(&[D, D], ramp));
            put(&format!("{l}/attention/linear_0/bias"), f32_var(&[D], ramp));
            put(&format!("{l}/attention/linear_1/weight"), f32_var(&[2 * D, D], |i| (i / D) as f32));
            put(&format!("{l}/attention/linear_1/bias"), f32_var(&[2 * D], |i| if i < D { 0.0 } else { 5.0 }));
            put(&format!("{l}/attention/linear_2/weight"), f32_var(&[D, D], ramp));
            put(&format!("{l}/attention/linear_2/bias"), f32_var(&[D], ramp));
        }
    }
    m.aliases.insert("decoder/projection/weight".into(), "decoder/embeddings/weight".into());
    m
}

fn vocab() -> Vec<String> {
    let mut v: Vec<String> = (0..VOCAB).map(|i| format!("t{i}")).collect();
    v.extend([vocab::END_OF_TEXT.to_string(), "<|startoftranscript|>".into(), "<|en|>".into()]);
    v
}

fn convert_bytes(m: &Ct2Model, w: WeightType) -> Result<Vec<u8>, ConvertError> {
    let mut out = Vec::new();
    convert(m, &vocab(), w, &mut out)?;
    Ok(out)
}

/// The f32 data of one tensor in an F32 GGML file.
fn tensor_values(file: &[u8], wanted: &str) -> Vec<f32> {
    let summary = ggml::read_summary(file).unwrap();
    // Walk again to find the data offset of `wanted` (header sizes are known).
    let mut pos = 4 * 12 + 8 + summary.n_mel_filters * mel::N_FREQS * 4 + 4;
    pos += summary.vocab.iter().map(|t| 4 + t.len()).sum::<usize>();
    for (name, dims, ty) in &summary.tensors {
        pos += 12 + 4 * dims.len() + name.len();
        let n: usize = dims.iter().map(|&d| d as usize).product();
        assert_eq!(*ty, 0, "helper reads F32 files only");
        if name == wanted {
            return file[pos..pos + 4 * n].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        }
        pos += 4 * n;
    }
    panic!("{wanted} not in file");
}

#[test]
fn header_round_trips_through_the_ct2_reader() {
    let m = tiny_model();
    let parsed = ct2::parse(&ct2::write(&m)).unwrap();
    assert_eq!(parsed.spec, "WhisperSpec");
    assert_eq!(parsed.spec_revision, 3);
    assert_eq!(parsed.variables.len(), m.variables.len());
    assert_eq!(parsed.get("decoder/projection/weight").unwrap().shape, vec![VOCAB + 3, D]);
    assert_eq!(parsed.get("encoder/num_heads").unwrap().as_scalar_int(), Some(2));
    assert_eq!(parsed.layer_count("encoder"), 1);
}

#[test]
fn hyper_parameters_and_tensor_types_follow_whisper_cpp_rules() {
    let m = tiny_model();
    // (weights, type of the decoder's matrices, type of the encoder's)
    for (weights, decoder_type, encoder_type) in [
        (WeightType::F32, 0, 0),
        (WeightType::F16, 1, 1),
        (WeightType::Bf16, 30, 30),
        (WeightType::Q8_0, 8, 8),
        (WeightType::Q5_0, 6, 6),
        (WeightType::Q8_0F16Enc, 8, 1),
    ] {
        let file = convert_bytes(&m, weights).unwrap();
        let s = ggml::read_summary(file.as_slice()).unwrap();
        assert_eq!(s.hparams.n_vocab, (VOCAB + 3) as i32);
        assert_eq!(s.hparams.n_audio_state, D as i32);
        assert_eq!(s.hparams.n_audio_head, 2);
        assert_eq!((s.hparams.n_audio_layer, s.hparams.n_text_layer), (1, 1));
        assert_eq!((s.hparams.n_audio_ctx, s.hparams.n_text_ctx), (1500, 448));
        assert_eq!(s.hparams.n_mels, MELS as i32);
        assert_eq!(s.hparams.ftype, weights.header_ftype());
        assert_eq!(s.vocab.len(), VOCAB);
        assert_eq!(s.vocab[3], b"t3");
        let find = |n: &str| s.tensors.iter().find(|t| t.0 == n).unwrap_or_else(|| panic!("{n} missing")).clone();
        // 1-D, positional and conv biases are F32; conv kernels F16 unless F32; matrices follow the header.
        assert_eq!(find("encoder.blocks.0.attn.query.bias").2, 0);
        assert_eq!(find("decoder.positional_embedding").2, 0);
        assert_eq!(find("encoder.conv1.bias"), ("encoder.conv1.bias".into(), vec![1, D as i32], 0));
        assert_eq!(find("encoder.conv1.weight").2, if weights == WeightType::F32 { 0 } else { 1 });
        assert_eq!(find("encoder.conv1.weight").1, vec![3, MELS as i32, D as i32]);
        for name in [
            "decoder.token_embedding.weight",
            "decoder.blocks.0.mlp.0.weight",
            "decoder.blocks.0.cross_attn.value.weight",
        ] {
            assert_eq!(find(name).2, decoder_type, "{weights:?} {name}");
        }
        for name in ["encoder.blocks.0.attn.query.weight", "encoder.blocks.0.mlp.2.weight"] {
            assert_eq!(find(name).2, encoder_type, "{weights:?} {name}");
        }
        // No key biases, no separate projection.
        assert!(s.tensors.iter().all(|t| !t.0.ends_with("key.bias") && !t.0.contains("projection")));
        // 2 conv*2 + 2 pos + emb + 2 ln_post/ln*2 + encoder block 15 + decoder block 24
        assert_eq!(s.tensors.len(), 4 + 2 + 1 + 4 + 15 + 24);
    }
}

#[test]
fn fused_projections_are_split_in_row_order() {
    let file = convert_bytes(&tiny_model(), WeightType::F32).unwrap();
    // Fused row r holds value r: query rows 0..D, key D..2D, value 2D..3D.
    for (part, first_row) in [("query", 0), ("key", D), ("value", 2 * D)] {
        let w = tensor_values(&file, &format!("encoder.blocks.0.attn.{part}.weight"));
        assert_eq!(w.len(), D * D);
        assert_eq!(w[0], first_row as f32, "{part}");
        assert_eq!(w[D * D - 1], (first_row + D - 1) as f32, "{part}");
    }
    assert_eq!(tensor_values(&file, "encoder.blocks.0.attn.value.bias")[0], 1.0 + 2.0 * D as f32);
    assert_eq!(tensor_values(&file, "decoder.blocks.0.cross_attn.value.weight")[0], D as f32);
    assert_eq!(tensor_values(&file, "decoder.blocks.0.cross_attn.value.bias")[0], 5.0);
}

#[test]
fn int8_f16_and_bf16_weights_are_dequantised() {
    let mut m = tiny_model();
    let name = "encoder/layer_0/self_attention/linear_1/weight";
    // int8 with per-row scale 2.0: stored 4 means 2.0.
    m.variables.insert(name.into(), Variable { shape: vec![D, D], dtype: DType::I8, data: vec![4u8; D * D] });
    m.variables.insert(format!("{name}_scale"), f32_var(&[D], |_| 2.0));
    let half_name = "encoder/layer_0/ffn/linear_1/bias";
    m.variables.insert(
        half_name.into(),
        Variable {
            shape: vec![D],
            dtype: DType::F16,
            data: (0..D).flat_map(|_| half::f16::from_f32(0.5).to_le_bytes()).collect(),
        },
    );
    let bf_name = "encoder/layer_0/ffn/linear_0/bias";
    m.variables.insert(
        bf_name.into(),
        Variable {
            shape: vec![4 * D],
            dtype: DType::BF16,
            data: (0..4 * D).flat_map(|_| half::bf16::from_f32(-1.5).to_le_bytes()).collect(),
        },
    );
    let file = convert_bytes(&m, WeightType::F32).unwrap();
    assert!(tensor_values(&file, "encoder.blocks.0.attn.out.weight").iter().all(|&v| v == 2.0));
    assert!(tensor_values(&file, "encoder.blocks.0.mlp.2.bias").iter().all(|&v| v == 0.5));
    assert!(tensor_values(&file, "encoder.blocks.0.mlp.0.bias").iter().all(|&v| v == -1.5));
}

#[test]
fn q8_0_blocks_decode_close_to_the_original() {
    let m = tiny_model();
    let values = m.f32_values("encoder/layer_0/ffn/linear_0/weight").unwrap();
    let bytes = ggml::encode(&values, &[4 * D, D], ggml::TensorType::Q8_0).unwrap();
    // Q8_0: per 32 values one f16 scale and 32 int8s.
    assert_eq!(bytes.len(), 4 * D * (2 + 32));
    let scale = half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
    let restored = bytes[2 + 31] as i8 as f32 * scale;
    assert!((restored - values[31]).abs() <= scale, "{restored} vs {}", values[31]);
    assert!(ggml::encode(&values[..30], &[1, 30], ggml::TensorType::Q8_0).is_err());
}

#[test]
fn unrepresentable_models_are_refused_with_a_reason() {
    let refuse = |m: Ct2Model, needle: &str| {
        let err = convert_bytes(&m, WeightType::F16).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    };
    let mut m = tiny_model();
    m.variables.insert("encoder/layer_0/self_attention/linear_0/bias".into(), f32_var(&[3 * D], |_| 1.0));
    refuse(m, "key bias");
    let mut m = tiny_model();
    m.aliases.clear();
    m.variables.insert("decoder/projection/weight".into(), f32_var(&[VOCAB + 3, D], |_| 9.0));
    refuse(m, "ties them");
    let mut m = tiny_model();
    m.spec = "TransformerSpec".into();
    refuse(m, "not a Whisper model");
    let mut m = tiny_model();
    m.variables.remove("decoder/layer_norm/gamma");
    refuse(m, "decoder/layer_norm/gamma");
    let mut m = tiny_model();
    m.variables
        .insert("encoder/conv1/bias".into(), Variable { shape: vec![D], dtype: DType::I32, data: vec![0; 4 * D] });
    refuse(m, "not a weight type");
    let mut m = tiny_model();
    m.variables.insert("decoder/embeddings/weight".into(), f32_var(&[4, D], |_| 0.0));
    refuse(m, "vocabulary has 8 regular tokens");
}

#[test]
fn malformed_ct2_files_are_errors_not_panics() {
    let bytes = ct2::write(&tiny_model());
    assert!(matches!(ct2::parse(&bytes[..bytes.len() / 2]), Err(ConvertError::Malformed(_))));
    assert!(matches!(ct2::parse(&[]), Err(ConvertError::Malformed(_))));
    let mut old = bytes.clone();
    old[0] = 5;
    assert!(matches!(ct2::parse(&old), Err(ConvertError::Unsupported(_))));
    // A variable whose byte count disagrees with its shape.
    let mut liar = tiny_model();
    liar.variables.insert("x".into(), Variable { shape: vec![1_000_000], dtype: DType::F32, data: vec![0; 8] });
    assert!(matches!(ct2::parse(&ct2::write(&liar)), Err(ConvertError::Malformed(_))));
    let mut bad_dtype = ct2::write(&Ct2Model { spec: "WhisperSpec".into(), ..Default::default() });
    bad_dtype.truncate(bad_dtype.len() - 8); // drop variable count + alias count
    bad_dtype.extend_from_slice(&1u32.to_le_bytes());
    bad_dtype.extend_from_slice(&[2, 0, b'x', 0, 0, 9, 0, 0, 0, 0]);
    assert!(matches!(ct2::parse(&bad_dtype), Err(ConvertError::Unsupported(_))));
}

#[test]
fn convert_dir_writes_atomically_and_names_the_file_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let ct2_dir = dir.path().join("ct2");
    std::fs::create_dir(&ct2_dir).unwrap();
    std::fs::write(ct2_dir.join("model.bin"), ct2::write(&tiny_model())).unwrap();
    std::fs::write(ct2_dir.join("vocabulary.txt"), vocab().join("\n")).unwrap();
    let out = dir.path().join("m.bin");
    let converted = convert_dir(&ct2_dir, &out, WeightType::Q8_0).unwrap();
    assert_eq!(converted.vocab_size, VOCAB);
    assert!(out.exists());
    std::fs::write(ct2_dir.join("model.bin"), b"junk").unwrap();
    let bad_out = dir.path().join("bad.bin");
    let err = convert_dir(&ct2_dir, &bad_out, WeightType::Q8_0).unwrap_err().to_string();
    assert!(err.contains("model.bin"), "{err}");
    assert!(!bad_out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no partial file left behind");
}
