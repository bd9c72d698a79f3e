//! Reader for CTranslate2 `model.bin` files (binary version 6, `WhisperSpec`).
//!
//! In: the bytes of a `model.bin`. Out: [`Ct2Model`], every variable with its shape, dtype
//! and raw little-endian data, plus the alias table. Counts and sizes in the header are
//! checked against the bytes actually present, so a truncated or hostile file is an error
//! rather than a huge allocation.

use std::collections::BTreeMap;

use super::ConvertError;

/// Element type codes used by CTranslate2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(code: u8) -> Result<Self, ConvertError> {
        Ok(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            other => return Err(ConvertError::Unsupported(format!("unknown CTranslate2 dtype code {other}"))),
        })
    }

    pub fn code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::F16 => 4,
            DType::BF16 => 5,
        }
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

impl Variable {
    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// The value of a rank-0 integer setting such as `encoder/num_heads`.
    pub fn as_scalar_int(&self) -> Option<i64> {
        if !self.shape.is_empty() {
            return None;
        }
        match self.dtype {
            DType::I8 => self.data.first().map(|&b| b as i8 as i64),
            DType::I16 => Some(i16::from_le_bytes(self.data.get(..2)?.try_into().ok()?) as i64),
            DType::I32 => Some(i32::from_le_bytes(self.data.get(..4)?.try_into().ok()?) as i64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Ct2Model {
    pub spec: String,
    pub spec_revision: u32,
    pub variables: BTreeMap<String, Variable>,
    /// alias name -> target variable name
    pub aliases: BTreeMap<String, String>,
}

const SUPPORTED_BINARY_VERSION: u32 = 6;
const MAX_RANK: u8 = 8;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ConvertError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| ConvertError::Malformed(format!("file ends inside {what} at byte {}", self.pos)))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self, what: &str) -> Result<u8, ConvertError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, ConvertError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    /// u16 length (NUL included), then the bytes.
    fn string(&mut self, what: &str) -> Result<String, ConvertError> {
        let len = self.u16(what)? as usize;
        let raw = self.take(len, what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| ConvertError::Malformed(format!("{what} is not UTF-8")))
    }
}

/// Parse a whole `model.bin`.
pub fn parse(bytes: &[u8]) -> Result<Ct2Model, ConvertError> {
    let mut cur = Cursor { bytes, pos: 0 };
    let version = cur.u32("binary version")?;
    if version != SUPPORTED_BINARY_VERSION {
        return Err(ConvertError::Unsupported(format!(
            "CTranslate2 binary version {version} (only version {SUPPORTED_BINARY_VERSION} is supported)"
        )));
    }
    let spec = cur.string("spec name")?;
    let spec_revision = cur.u32("spec revision")?;
    let count = cur.u32("variable count")? as usize;
    let mut variables = BTreeMap::new();
    for index in 0..count {
        let name = cur.string(&format!("name of variable {index}"))?;
        let rank = cur.u8(&format!("rank of {name}"))?;
        if rank > MAX_RANK {
            return Err(ConvertError::Malformed(format!("{name} has rank {rank}")));
        }
        let mut shape = Vec::with_capacity(rank as usize);
        for _ in 0..rank {
            shape.push(cur.u32(&format!("shape of {name}"))? as usize);
        }
        let dtype = DType::from_code(cur.u8(&format!("dtype of {name}"))?)?;
        let byte_count = cur.u32(&format!("size of {name}"))? as usize;
        let expected = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| ConvertError::Malformed(format!("{name} has an absurd shape {shape:?}")))?;
        if expected != byte_count {
            return Err(ConvertError::Malformed(format!(
                "{name}: shape {shape:?} of {dtype:?} needs {expected} bytes, header says {byte_count}"
            )));
        }
        let data = cur.take(byte_count, &format!("data of {name}"))?.to_vec();
        variables.insert(name, Variable { shape, dtype, data });
    }
    let mut aliases = BTreeMap::new();
    if cur.pos < bytes.len() {
        let alias_count = cur.u32("alias count")?;
        for _ in 0..alias_count {
            let alias = cur.string("alias name")?;
            let target = cur.string("alias target")?;
            aliases.insert(alias, target);
        }
    }
    Ok(Ct2Model { spec, spec_revision, variables, aliases })
}

impl Ct2Model {
    /// Look a variable up by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.variables.get(name).or_else(|| self.aliases.get(name).and_then(|target| self.variables.get(target)))
    }

    pub fn require(&self, name: &str) -> Result<&Variable, ConvertError> {
        self.get(name).ok_or_else(|| ConvertError::Missing(name.to_string()))
    }

    /// A weight as f32, dequantising int8 weights with their per-row `*_scale` sibling.
    pub fn f32_values(&self, name: &str) -> Result<Vec<f32>, ConvertError> {
        let var = self.require(name)?;
        match var.dtype {
            DType::F32 => Ok(var.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
            DType::F16 => {
                Ok(var.data.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect())
            }
            DType::BF16 => Ok(var
                .data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32())
                .collect()),
            DType::I8 => {
                let scale_name = format!("{name}_scale");
                let scales = self
                    .f32_values(&scale_name)
                    .map_err(|_| ConvertError::Unsupported(format!("{name} is int8 but has no {scale_name}")))?;
                let rows = var.shape.first().copied().unwrap_or(1);
                if scales.len() != rows || rows == 0 {
                    return Err(ConvertError::Unsupported(format!(
                        "{name}: {} scales for {rows} rows (only per-row int8 scales are supported)",
                        scales.len()
                    )));
                }
                let per_row = var.data.len() / rows;
                Ok(var
                    .data
                    .chunks_exact(per_row)
                    .zip(&scales)
                    .flat_map(|(row, &scale)| row.iter().map(move |&q| q as i8 as f32 / scale))
                    .collect())
            }
            DType::I16 | DType::I32 => Err(ConvertError::Unsupported(format!(
                "{name} is stored as {:?}, which is not a weight type",
                var.dtype
            ))),
        }
    }

    /// Number of `prefix/layer_N` blocks.
    pub fn layer_count(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                let p = format!("{prefix}/layer_{i}/");
                self.variables.range(p.clone()..).next().is_some_and(|(k, _)| k.starts_with(&p))
            })
            .count()
    }
}

/// Serialise a model (used by tests to build small synthetic CT2 files).
pub fn write(model: &Ct2Model) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&SUPPORTED_BINARY_VERSION.to_le_bytes());
    string(&mut out, &model.spec);
    out.extend_from_slice(&model.spec_revision.to_le_bytes());
    out.extend_from_slice(&(model.variables.len() as u32).to_le_bytes());
    for (name, var) in &model.variables {
        string(&mut out, name);
        out.push(var.shape.len() as u8);
        for &d in &var.shape {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        out.push(var.dtype.code());
        out.extend_from_slice(&(var.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&var.data);
    }
    out.extend_from_slice(&(model.aliases.len() as u32).to_le_bytes());
    for (alias, target) in &model.aliases {
        string(&mut out, alias);
        string(&mut out, target);
    }
    out
}
