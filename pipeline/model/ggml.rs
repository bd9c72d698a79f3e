//! Writer (and header reader) for whisper.cpp's GGML model files.
//!
//! In: hyper-parameters, mel filters, vocabulary bytes and named f32 tensors. Out: the bytes
//! whisper.cpp's loader accepts. Tensor data is written as F32, F16 or a GGML block
//! quantisation; quantisation goes through ggml's own `ggml_quantize_chunk` (whisper-rs raw
//! API) so the blocks are bit-identical to what whisper.cpp's quantize tool would produce.

use std::io::{self, Read, Write};

use whisper_rs::whisper_rs_sys as sys;

use super::ConvertError;

pub const MAGIC: u32 = 0x6767_6d6c;
/// `GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR`: added to the file type of quantised files.
const QUANTIZED_FTYPE_BASE: i32 = 2000;
/// Added to the file type of a file whose encoder matrices are f16 (see
/// [`WeightType::Q8_0F16Enc`]); read by `scripts/whisper-cpp/whisper-f16-encoder-matrices.patch`.
const FTYPE_F16_ENCODER: i32 = 1_000_000;

/// The storage type of a model's 2-D weight matrices, as the user asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightType {
    F32,
    F16,
    /// bfloat16: the matrices run on AVX-512 BF16 dot products where the CPU has them, and as
    /// int8 rows (like f16) where it has AVX-512 VNNI.
    Bf16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q5_0")]
    Q5_0,
    /// q8_0, except the encoder's matrices, which are f16: the encoder multiplies a window's
    /// frames at once, where ggml's f16 tiles beat its q8_0 tiles on AVX2, while the decoder
    /// multiplies a token per beam, where the bytes read decide. Only whisper.cpp with
    /// callqa's patches reads such a file.
    #[value(name = "q8_0-f16enc")]
    #[serde(rename = "q8_0-f16enc")]
    Q8_0F16Enc,
}

impl WeightType {
    pub fn name(self) -> &'static str {
        match self {
            WeightType::F32 => "f32",
            WeightType::F16 => "f16",
            WeightType::Bf16 => "bf16",
            WeightType::Q8_0 => "q8_0",
            WeightType::Q5_0 => "q5_0",
            WeightType::Q8_0F16Enc => "q8_0-f16enc",
        }
    }

    /// The `ftype` header field (ggml_ftype, offset for quantised files).
    pub fn header_ftype(self) -> i32 {
        match self {
            WeightType::F32 => 0,
            WeightType::F16 => 1,
            WeightType::Bf16 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_BF16 as i32,
            WeightType::Q8_0 => QUANTIZED_FTYPE_BASE + 7,
            WeightType::Q5_0 => QUANTIZED_FTYPE_BASE + 8,
            WeightType::Q8_0F16Enc => FTYPE_F16_ENCODER + QUANTIZED_FTYPE_BASE + 7,
        }
    }

    /// The type of a 2-D weight matrix: `name` is its GGML tensor name.
    pub fn matrix_type(self, name: &str) -> TensorType {
        match self {
            WeightType::F32 => TensorType::F32,
            WeightType::F16 => TensorType::F16,
            WeightType::Bf16 => TensorType::Bf16,
            WeightType::Q8_0 => TensorType::Q8_0,
            WeightType::Q5_0 => TensorType::Q5_0,
            WeightType::Q8_0F16Enc if name.starts_with("encoder.") => TensorType::F16,
            WeightType::Q8_0F16Enc => TensorType::Q8_0,
        }
    }
}

/// ggml tensor type codes that appear in whisper files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q5_0,
}

impl TensorType {
    pub fn code(self) -> i32 {
        match self {
            TensorType::F32 => sys::ggml_type_GGML_TYPE_F32 as i32,
            TensorType::F16 => sys::ggml_type_GGML_TYPE_F16 as i32,
            TensorType::Bf16 => sys::ggml_type_GGML_TYPE_BF16 as i32,
            TensorType::Q8_0 => sys::ggml_type_GGML_TYPE_Q8_0 as i32,
            TensorType::Q5_0 => sys::ggml_type_GGML_TYPE_Q5_0 as i32,
        }
    }

    /// Elements per quantisation block (1 for plain floats).
    pub fn block_size(self) -> usize {
        // SAFETY: pure lookup in ggml's static type table.
        unsafe { sys::ggml_blck_size(self.code() as sys::ggml_type) as usize }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HyperParams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl HyperParams {
    fn fields(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }
}

fn put_i32(out: &mut impl Write, v: i32) -> io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

pub fn write_header(
    out: &mut impl Write,
    hp: &HyperParams,
    mel: &[f32],
    n_mels: usize,
    vocab: &[Vec<u8>],
) -> io::Result<()> {
    put_i32(out, MAGIC as i32)?;
    for v in hp.fields() {
        put_i32(out, v)?;
    }
    put_i32(out, n_mels as i32)?;
    put_i32(out, (mel.len() / n_mels) as i32)?;
    for &w in mel {
        out.write_all(&w.to_le_bytes())?;
    }
    put_i32(out, vocab.len() as i32)?;
    for token in vocab {
        put_i32(out, token.len() as i32)?;
        out.write_all(token)?;
    }
    Ok(())
}

/// Encode f32 values as `ty`. `shape` is row-major (PyTorch order); rows are the last axis.
pub fn encode(values: &[f32], shape: &[usize], ty: TensorType) -> Result<Vec<u8>, ConvertError> {
    Ok(match ty {
        TensorType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        TensorType::F16 => values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        TensorType::Bf16 => values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
        TensorType::Q8_0 | TensorType::Q5_0 => {
            let per_row = *shape.last().unwrap_or(&0);
            let block = ty.block_size();
            if per_row == 0 || per_row % block != 0 {
                return Err(ConvertError::Unsupported(format!(
                    "rows of {per_row} values cannot be quantised in blocks of {block}"
                )));
            }
            let rows = values.len() / per_row;
            let code = ty.code() as sys::ggml_type;
            // SAFETY: ggml_row_size is a pure size computation.
            let row_bytes = unsafe { sys::ggml_row_size(code, per_row as i64) };
            let mut out = vec![0u8; rows * row_bytes];
            // SAFETY: `values` holds rows * per_row f32s, `out` holds rows * row_bytes bytes,
            // and this type needs no importance matrix.
            let written = unsafe {
                sys::ggml_quantize_init(code);
                sys::ggml_quantize_chunk(
                    code,
                    values.as_ptr(),
                    out.as_mut_ptr().cast(),
                    0,
                    rows as i64,
                    per_row as i64,
                    std::ptr::null(),
                )
            };
            debug_assert_eq!(written, out.len());
            out
        }
    })
}

pub fn write_tensor(out: &mut impl Write, name: &str, shape: &[usize], ty: TensorType, data: &[u8]) -> io::Result<()> {
    put_i32(out, shape.len() as i32)?;
    put_i32(out, name.len() as i32)?;
    put_i32(out, ty.code())?;
    for &d in shape.iter().rev() {
        put_i32(out, d as i32)?;
    }
    out.write_all(name.as_bytes())?;
    out.write_all(data)
}

/// Only the hyper-parameters at the start of a GGML whisper file.
pub fn read_hparams(mut input: impl Read) -> Result<HyperParams, ConvertError> {
    let mut head = [0u8; 48];
    input.read_exact(&mut head).map_err(|_| ConvertError::Malformed("GGML file is shorter than its header".into()))?;
    let f: Vec<i32> = head.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    if f[0] as u32 != MAGIC {
        return Err(ConvertError::Malformed("not a GGML file (bad magic)".into()));
    }
    Ok(HyperParams {
        n_vocab: f[1],
        n_audio_ctx: f[2],
        n_audio_state: f[3],
        n_audio_head: f[4],
        n_audio_layer: f[5],
        n_text_ctx: f[6],
        n_text_state: f[7],
        n_text_head: f[8],
        n_text_layer: f[9],
        n_mels: f[10],
        ftype: f[11],
    })
}

/// Header of a GGML whisper file, and the tensor directory (name, ggml dims, type code).
#[derive(Debug, Clone)]
pub struct FileSummary {
    pub hparams: HyperParams,
    pub n_mel_filters: usize,
    pub vocab: Vec<Vec<u8>>,
    pub tensors: Vec<(String, Vec<i32>, i32)>,
}

/// Read back a file written by this module (used by tests and `callqa model inspect`).
pub fn read_summary(mut input: impl Read) -> Result<FileSummary, ConvertError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(ConvertError::Io)?;
    let mut pos = 0usize;
    let truncated = || ConvertError::Malformed("GGML file is truncated".into());
    let i32_at = |pos: &mut usize| -> Result<i32, ConvertError> {
        let v = bytes.get(*pos..pos.saturating_add(4)).ok_or_else(truncated)?;
        *pos += 4;
        Ok(i32::from_le_bytes(v.try_into().unwrap()))
    };
    // A count or length: never negative, never past the end of the file.
    let len_at = |pos: &mut usize, what: &str| -> Result<usize, ConvertError> {
        usize::try_from(i32_at(pos)?).map_err(|_| ConvertError::Malformed(format!("negative {what} in GGML file")))
    };
    let skip = |pos: &mut usize, n: Option<usize>| -> Result<(), ConvertError> {
        *pos = n.and_then(|n| pos.checked_add(n)).filter(|&end| end <= bytes.len()).ok_or_else(truncated)?;
        Ok(())
    };
    if i32_at(&mut pos)? as u32 != MAGIC {
        return Err(ConvertError::Malformed("not a GGML file (bad magic)".into()));
    }
    let mut f = [0i32; 11];
    for v in &mut f {
        *v = i32_at(&mut pos)?;
    }
    let hparams = HyperParams {
        n_vocab: f[0],
        n_audio_ctx: f[1],
        n_audio_state: f[2],
        n_audio_head: f[3],
        n_audio_layer: f[4],
        n_text_ctx: f[5],
        n_text_state: f[6],
        n_text_head: f[7],
        n_text_layer: f[8],
        n_mels: f[9],
        ftype: f[10],
    };
    let n_mel = len_at(&mut pos, "mel filter count")?;
    let n_fft = len_at(&mut pos, "FFT size")?;
    skip(&mut pos, n_mel.checked_mul(n_fft).and_then(|n| n.checked_mul(4)))?;
    let n_tokens = len_at(&mut pos, "token count")?;
    let mut vocab = Vec::new();
    for _ in 0..n_tokens {
        let len = len_at(&mut pos, "token length")?;
        let start = pos;
        skip(&mut pos, Some(len)).map_err(|_| ConvertError::Malformed("truncated vocabulary".into()))?;
        vocab.push(bytes[start..pos].to_vec());
    }
    let mut tensors = Vec::new();
    while pos < bytes.len() {
        let n_dims = len_at(&mut pos, "tensor rank")?;
        if n_dims > 4 {
            return Err(ConvertError::Malformed(format!("tensor of rank {n_dims} (ggml has at most 4)")));
        }
        let name_len = len_at(&mut pos, "tensor name length")?;
        let ty = i32_at(&mut pos)?;
        let dims: Vec<usize> = (0..n_dims).map(|_| len_at(&mut pos, "tensor dimension")).collect::<Result<_, _>>()?;
        let start = pos;
        skip(&mut pos, Some(name_len))?;
        let name = String::from_utf8_lossy(&bytes[start..pos]).into_owned();
        // SAFETY: ggml's static type table, read only for a code inside it.
        let (block, type_size) = match u32::try_from(ty) {
            Ok(t) if t < sys::ggml_type_GGML_TYPE_COUNT => unsafe {
                (sys::ggml_blck_size(t) as usize, sys::ggml_type_size(t))
            },
            _ => (0, 0),
        };
        if block == 0 || type_size == 0 {
            return Err(ConvertError::Malformed(format!("tensor {name} has unknown ggml type {ty}")));
        }
        let elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        skip(&mut pos, elements.and_then(|e| (e / block).checked_mul(type_size)))
            .map_err(|_| ConvertError::Malformed(format!("tensor {name} is truncated")))?;
        tensors.push((name, dims.iter().map(|&d| d as i32).collect(), ty));
    }
    Ok(FileSummary { hparams, n_mel_filters: n_mel, vocab, tensors })
}
