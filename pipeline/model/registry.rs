//! The model registry (`models/models.toml`) and where the default model lives.
//!
//! In: the registry compiled into the binary and the `models/` folder. Out: the path of the
//! default GGML file, or an error that names the command fetching it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::WeightType;

const REGISTRY_TOML: &str = include_str!("../../models/models.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub default: String,
    /// Read through [`Registry::default_weights`], which picks one of these for the build.
    default_weights: WeightType,
    default_weights_avx512_bf16: WeightType,
    default_weights_avx512_vnni: WeightType,
    pub models: BTreeMap<String, ModelSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    pub description: String,
    pub model_bin_parts: Vec<String>,
    pub model_bin_sha256: String,
    pub vocabulary: String,
    pub wheels: Vec<Wheel>,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wheel {
    pub package: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
}

impl Registry {
    pub fn bundled() -> Registry {
        toml::from_str(REGISTRY_TOML).expect("models/models.toml is valid (checked by a unit test)")
    }

    pub fn file_name(name: &str, weights: WeightType) -> String {
        format!("ggml-{name}-{}.bin", weights.name())
    }

    /// The default weights for this build of whisper.cpp (its CPU features are properties of
    /// the build, so a binary built for one CPU cannot run on an older one anyway): bf16 where
    /// its kernels have AVX-512 BF16 dot products, f16 where they have AVX-512 VNNI without
    /// BF16 (both multiplied as int8 rows there: README, Throughput), q8_0 with f16 encoder
    /// matrices elsewhere.
    pub fn default_weights(&self) -> WeightType {
        if has_cpu_feature(whisper_rs::whisper_rs_sys::ggml_cpu_has_avx512_bf16) {
            self.default_weights_avx512_bf16
        } else if has_cpu_feature(whisper_rs::whisper_rs_sys::ggml_cpu_has_avx512_vnni) {
            self.default_weights_avx512_vnni
        } else {
            self.default_weights
        }
    }

    pub fn default_file_name(&self) -> String {
        Self::file_name(&self.default, self.default_weights())
    }
}

/// Whether ggml's CPU kernels were compiled with a feature (`ggml_cpu_has_*`).
fn has_cpu_feature(ggml_cpu_has: unsafe extern "C" fn() -> std::os::raw::c_int) -> bool {
    // SAFETY: the `ggml_cpu_has_*` functions report compile-time properties of ggml's CPU backend.
    unsafe { ggml_cpu_has() != 0 }
}

/// The folder holding fetched models: `$CALLQA_MODELS_DIR`, else `./models`, else the
/// source tree's `models/` (so `cargo run` works from anywhere in the checkout).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CALLQA_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let local = Path::new("models");
    if local.join("models.toml").exists() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

#[derive(Debug, thiserror::Error)]
#[error("model file {} not found; fetch it with `scripts/fetch-model.sh {name} {}` or pass --model FILE", path.display(), weights.name())]
pub struct ModelNotFound {
    pub path: PathBuf,
    pub name: String,
    pub weights: WeightType,
}

/// Resolve `--model` (or the registry default) to an existing file.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf, ModelNotFound> {
    let registry = Registry::bundled();
    let path = explicit.map_or_else(|| models_dir().join(registry.default_file_name()), Path::to_path_buf);
    if path.is_file() {
        Ok(path)
    } else {
        let weights = registry.default_weights();
        Err(ModelNotFound { path, name: registry.default, weights })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_registry_parses_and_pins_every_wheel() {
        let r = Registry::bundled();
        assert!(r.models.contains_key(&r.default));
        for (name, m) in &r.models {
            assert!(!m.wheels.is_empty(), "{name}");
            for w in &m.wheels {
                assert_eq!(w.sha256.len(), 64, "{name}/{}", w.package);
            }
            assert_eq!(m.model_bin_sha256.len(), 64);
        }
        use whisper_rs::whisper_rs_sys::{ggml_cpu_has_avx512_bf16, ggml_cpu_has_avx512_vnni};
        let expected = if has_cpu_feature(ggml_cpu_has_avx512_bf16) {
            "ggml-base-bf16.bin"
        } else if has_cpu_feature(ggml_cpu_has_avx512_vnni) {
            "ggml-base-f16.bin"
        } else {
            "ggml-base-q8_0-f16enc.bin"
        };
        assert_eq!(r.default_file_name(), expected);
    }
}
