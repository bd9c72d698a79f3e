//! Whisper model files: CTranslate2 -> GGML conversion and the model registry.
//!
//! In: a CTranslate2 Whisper directory (`model.bin` + `vocabulary.{txt,json}`), as shipped in
//! PyPI wheels. Out: a whisper.cpp GGML file that whisper-rs loads, with 2-D weights stored as
//! f32, f16, bf16, q8_0, q5_0, or q8_0 with f16 encoder matrices. Anything the GGML layout
//! cannot represent (a separate output projection, a non-zero key bias, unknown dtypes) is
//! refused with a reason.

pub mod ct2;
pub mod ggml;
pub mod mel;
pub mod registry;
pub mod vocab;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ct2::Ct2Model;
pub use ggml::WeightType;
use ggml::{HyperParams, TensorType};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("malformed model: {0}")]
    Malformed(String),
    #[error("cannot be represented in GGML: {0}")]
    Unsupported(String),
    #[error("model lacks variable {0}")]
    Missing(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A conversion failure with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("model conversion ({}): {source}", path.display())]
pub struct ModelFileError {
    pub path: PathBuf,
    #[source]
    pub source: ConvertError,
}

/// How a GGML tensor must be stored, by role (whisper.cpp's loader checks these types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// 1-D parameters (biases, layer norms), positional embeddings and conv biases: always F32.
    AlwaysF32,
    /// Convolution kernels: F16 unless the whole file is F32.
    ConvKernel,
    /// 2-D weight matrices: the file's weight type.
    Matrix,
}

struct Tensor {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
    role: Role,
}

/// What a conversion produced.
#[derive(Debug, Clone)]
pub struct Converted {
    pub hparams: HyperParams,
    pub tensor_count: usize,
    pub vocab_size: usize,
}

fn setting(model: &Ct2Model, name: &str) -> Option<i64> {
    model.get(name).and_then(|v| v.as_scalar_int())
}

fn dim(model: &Ct2Model, name: &str, axis: usize) -> Result<usize, ConvertError> {
    model
        .require(name)?
        .shape
        .get(axis)
        .copied()
        .ok_or_else(|| ConvertError::Malformed(format!("{name} has no axis {axis}")))
}

/// Split a fused projection along rows into `parts` equal pieces.
fn split_rows(values: &[f32], parts: usize) -> Vec<Vec<f32>> {
    let chunk = values.len() / parts;
    values.chunks(chunk).map(<[f32]>::to_vec).collect()
}

fn require_zero(values: &[f32], what: &str) -> Result<(), ConvertError> {
    match values.iter().map(|v| v.abs()).fold(0.0f32, f32::max) {
        max if max == 0.0 => Ok(()),
        max => Err(ConvertError::Unsupported(format!(
            "{what} is non-zero (max |b| = {max}); GGML Whisper has no key bias"
        ))),
    }
}

struct Builder<'m> {
    model: &'m Ct2Model,
    tensors: Vec<Tensor>,
}

impl Builder<'_> {
    fn push(&mut self, name: String, shape: Vec<usize>, values: Vec<f32>, role: Role) -> Result<(), ConvertError> {
        let expected: usize = shape.iter().product();
        if expected != values.len() {
            return Err(ConvertError::Malformed(format!("{name}: {} values for shape {shape:?}", values.len())));
        }
        self.tensors.push(Tensor { name, shape, values, role });
        Ok(())
    }

    /// Copy a CT2 variable unchanged under a GGML name.
    fn copy(&mut self, ct2: &str, ggml: &str, role: Role) -> Result<(), ConvertError> {
        let shape = self.model.require(ct2)?.shape.clone();
        let values = self.model.f32_values(ct2)?;
        let role = if shape.len() < 2 { Role::AlwaysF32 } else { role };
        self.push(ggml.to_string(), shape, values, role)
    }

    fn layer_norm(&mut self, ct2: &str, ggml: &str) -> Result<(), ConvertError> {
        self.copy(&format!("{ct2}/gamma"), &format!("{ggml}.weight"), Role::AlwaysF32)?;
        self.copy(&format!("{ct2}/beta"), &format!("{ggml}.bias"), Role::AlwaysF32)
    }

    fn linear(&mut self, ct2: &str, ggml: &str) -> Result<(), ConvertError> {
        self.copy(&format!("{ct2}/weight"), &format!("{ggml}.weight"), Role::Matrix)?;
        self.copy(&format!("{ct2}/bias"), &format!("{ggml}.bias"), Role::AlwaysF32)
    }

    /// Split a fused projection (`linear_N`) into named parts; the part named `key` loses its
    /// bias, which must be zero.
    fn fused(&mut self, ct2: &str, ggml_parts: &[&str], d: usize) -> Result<(), ConvertError> {
        let weight = self.model.f32_values(&format!("{ct2}/weight"))?;
        let bias = self.model.f32_values(&format!("{ct2}/bias"))?;
        let parts = ggml_parts.len();
        if weight.len() != parts * d * d || bias.len() != parts * d {
            return Err(ConvertError::Malformed(format!("{ct2}: expected a fused [{}x{d}] projection", parts * d)));
        }
        for ((part, w), b) in ggml_parts.iter().zip(split_rows(&weight, parts)).zip(split_rows(&bias, parts)) {
            self.push(format!("{part}.weight"), vec![d, d], w, Role::Matrix)?;
            if part.ends_with(".key") {
                require_zero(&b, &format!("{ct2} key bias"))?;
            } else {
                self.push(format!("{part}.bias"), vec![d], b, Role::AlwaysF32)?;
            }
        }
        Ok(())
    }

    fn block(&mut self, side: &str, layer: usize, d: usize) -> Result<(), ConvertError> {
        let c = format!("{side}/layer_{layer}");
        let g = format!("{side}.blocks.{layer}");
        self.layer_norm(&format!("{c}/self_attention/layer_norm"), &format!("{g}.attn_ln"))?;
        self.fused(
            &format!("{c}/self_attention/linear_0"),
            &[&format!("{g}.attn.query"), &format!("{g}.attn.key"), &format!("{g}.attn.value")],
            d,
        )?;
        self.linear(&format!("{c}/self_attention/linear_1"), &format!("{g}.attn.out"))?;
        if side == "decoder" {
            self.layer_norm(&format!("{c}/attention/layer_norm"), &format!("{g}.cross_attn_ln"))?;
            self.linear(&format!("{c}/attention/linear_0"), &format!("{g}.cross_attn.query"))?;
            self.fused(
                &format!("{c}/attention/linear_1"),
                &[&format!("{g}.cross_attn.key"), &format!("{g}.cross_attn.value")],
                d,
            )?;
            self.linear(&format!("{c}/attention/linear_2"), &format!("{g}.cross_attn.out"))?;
        }
        self.layer_norm(&format!("{c}/ffn/layer_norm"), &format!("{g}.mlp_ln"))?;
        self.linear(&format!("{c}/ffn/linear_0"), &format!("{g}.mlp.0"))?;
        self.linear(&format!("{c}/ffn/linear_1"), &format!("{g}.mlp.2"))
    }
}

/// Check that the decoder's output projection is the token embedding, as GGML assumes.
fn check_tied_projection(model: &Ct2Model) -> Result<(), ConvertError> {
    if model.variables.contains_key("decoder/projection/bias") {
        return Err(ConvertError::Unsupported("decoder/projection has a bias".into()));
    }
    match model.variables.get("decoder/projection/weight") {
        None => Ok(()),
        Some(own) if own.data == model.require("decoder/embeddings/weight")?.data => Ok(()),
        Some(_) => Err(ConvertError::Unsupported(
            "decoder/projection/weight differs from the token embedding; GGML Whisper ties them".into(),
        )),
    }
}

/// Convert a parsed CTranslate2 Whisper model and its vocabulary into GGML bytes.
pub fn convert(
    model: &Ct2Model,
    vocab_tokens: &[String],
    weights: WeightType,
    out: &mut impl Write,
) -> Result<Converted, ConvertError> {
    if model.spec != "WhisperSpec" {
        return Err(ConvertError::Unsupported(format!("spec {:?} is not a Whisper model", model.spec)));
    }
    check_tied_projection(model)?;
    let d_audio = dim(model, "encoder/conv1/weight", 0)?;
    let n_mels = dim(model, "encoder/conv1/weight", 1)?;
    let d_text = dim(model, "decoder/embeddings/weight", 1)?;
    let n_vocab = dim(model, "decoder/embeddings/weight", 0)?;
    let n_audio_layer = model.layer_count("encoder");
    let n_text_layer = model.layer_count("decoder");
    if n_audio_layer == 0 || n_text_layer == 0 {
        return Err(ConvertError::Missing("encoder or decoder layers".into()));
    }
    let heads = |side: &str, d: usize| setting(model, &format!("{side}/num_heads")).map_or(d / 64, |h| h as usize);
    let hparams = HyperParams {
        n_vocab: n_vocab as i32,
        n_audio_ctx: dim(model, "encoder/position_encodings/encodings", 0)? as i32,
        n_audio_state: d_audio as i32,
        n_audio_head: heads("encoder", d_audio) as i32,
        n_audio_layer: n_audio_layer as i32,
        n_text_ctx: dim(model, "decoder/position_encodings/encodings", 0)? as i32,
        n_text_state: d_text as i32,
        n_text_head: heads("decoder", d_text) as i32,
        n_text_layer: n_text_layer as i32,
        n_mels: n_mels as i32,
        ftype: weights.header_ftype(),
    };
    let tokens = vocab::regular_token_bytes(vocab_tokens)?;
    if tokens.len() >= n_vocab {
        return Err(ConvertError::Malformed(format!(
            "vocabulary has {} regular tokens but the embedding only {n_vocab} rows",
            tokens.len()
        )));
    }

    let mut b = Builder { model, tensors: Vec::new() };
    b.copy("encoder/position_encodings/encodings", "encoder.positional_embedding", Role::AlwaysF32)?;
    for conv in ["conv1", "conv2"] {
        b.copy(&format!("encoder/{conv}/weight"), &format!("encoder.{conv}.weight"), Role::ConvKernel)?;
        // whisper.cpp keeps conv biases as [d, 1] so they broadcast over time.
        let bias = model.f32_values(&format!("encoder/{conv}/bias"))?;
        let len = bias.len();
        b.push(format!("encoder.{conv}.bias"), vec![len, 1], bias, Role::AlwaysF32)?;
    }
    for layer in 0..n_audio_layer {
        b.block("encoder", layer, d_audio)?;
    }
    b.layer_norm("encoder/layer_norm", "encoder.ln_post")?;
    b.copy("decoder/position_encodings/encodings", "decoder.positional_embedding", Role::AlwaysF32)?;
    b.copy("decoder/embeddings/weight", "decoder.token_embedding.weight", Role::Matrix)?;
    for layer in 0..n_text_layer {
        b.block("decoder", layer, d_text)?;
    }
    b.layer_norm("decoder/layer_norm", "decoder.ln")?;

    let mel = mel::filterbank(n_mels);
    ggml::write_header(out, &hparams, &mel, n_mels, &tokens)?;
    let tensor_count = b.tensors.len();
    for t in b.tensors {
        let ty = match (t.role, weights) {
            (Role::AlwaysF32, _) | (_, WeightType::F32) => TensorType::F32,
            (Role::ConvKernel, _) => TensorType::F16,
            (Role::Matrix, w) => w.matrix_type(&t.name),
        };
        let data =
            ggml::encode(&t.values, &t.shape, ty).map_err(|e| ConvertError::Unsupported(format!("{}: {e}", t.name)))?;
        ggml::write_tensor(out, &t.name, &t.shape, ty, &data)?;
    }
    Ok(Converted { hparams, tensor_count, vocab_size: tokens.len() })
}

/// Convert a CTranslate2 directory into a GGML file, writing through a temporary file so
/// the output appears complete or not at all.
pub fn convert_dir(ct2_dir: &Path, out_path: &Path, weights: WeightType) -> Result<Converted, ModelFileError> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source: ConvertError| ModelFileError { path, source }
    };
    let model_bin = ct2_dir.join("model.bin");
    let bytes = fs::read(&model_bin).map_err(|e| at(&model_bin)(e.into()))?;
    let model = ct2::parse(&bytes).map_err(at(&model_bin))?;
    drop(bytes);
    let (vocab_path, is_json) = ["vocabulary.json", "vocabulary.txt"]
        .iter()
        .map(|n| ct2_dir.join(n))
        .find(|p| p.exists())
        .map(|p| {
            let json = p.extension().is_some_and(|e| e == "json");
            (p, json)
        })
        .ok_or_else(|| at(ct2_dir)(ConvertError::Missing("vocabulary.json or vocabulary.txt".into())))?;
    let text = fs::read_to_string(&vocab_path).map_err(|e| at(&vocab_path)(e.into()))?;
    let tokens = vocab::parse_tokens(&text, is_json).map_err(at(&vocab_path))?;

    let tmp = out_path.with_extension("bin.partial");
    let result = (|| {
        let mut writer = BufWriter::new(fs::File::create(&tmp)?);
        let converted = convert(&model, &tokens, weights, &mut writer)?;
        writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, out_path)?;
        Ok(converted)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(at(out_path))
}

#[cfg(test)]
mod tests;
