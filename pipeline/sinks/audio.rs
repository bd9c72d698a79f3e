//! Muted copies of recordings (`callqa run --redacted-audio DIR`): a scored call -> its
//! recording with the time ranges of its `pii` events silenced, at
//! `DIR/call_date=YYYY-MM-DD/<call_id>.wav`, written atomically.
//!
//! The recording is read again here rather than kept through transcription: only the bytes
//! of one call are held at a time, and the hash proves they are the bytes that were scored.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::parquet::{write_atomic, SinkError};
use crate::privacy::mute;
use crate::record::{EventKind, ScoredCall};

/// The file name for a call: its id where that is a safe file name, else the id with unsafe
/// characters replaced and a hash of the id added (two ids never share a file).
pub fn file_name(call_id: &str) -> String {
    let safe: String =
        call_id.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if safe == call_id && !safe.starts_with('.') && safe.len() <= 200 {
        format!("{safe}.wav")
    } else {
        let hash = crate::run::stages::hex(&Sha256::digest(call_id.as_bytes()));
        format!("{}-{}.wav", safe.trim_start_matches('.').chars().take(100).collect::<String>(), &hash[..12])
    }
}

pub fn path_for(dir: &Path, call: &ScoredCall) -> PathBuf {
    copy_path(dir, &call.call.source.call_date.to_string(), &call.call.source.call_id)
}

/// Where the muted copy of a call of `call_date` (YYYY-MM-DD) lies under `dir`.
pub fn copy_path(dir: &Path, call_date: &str, call_id: &str) -> PathBuf {
    dir.join(format!("call_date={call_date}")).join(file_name(call_id))
}

/// Write the muted copy of a call's recording; returns its path.
pub fn write_muted_copy(dir: &Path, call: &ScoredCall, pad_s: f64) -> Result<PathBuf, SinkError> {
    let source = &call.call.source.path;
    let read_fail = |reason: String| SinkError::Read { path: source.clone(), reason };
    let mut bytes = std::fs::read(source).map_err(|e| read_fail(e.to_string()))?;
    if crate::run::stages::hex(&Sha256::digest(&bytes)) != call.call.content_sha256 {
        return Err(read_fail("the recording changed while it was processed; its muted copy is not written".into()));
    }
    let spans = call.events.iter().filter(|e| e.kind == EventKind::Pii).map(|e| (e.start_s, e.end_s));
    mute::mute_wav(&mut bytes, &mute::ranges(spans, pad_s)).map_err(|e| read_fail(e.to_string()))?;
    let path = path_for(dir, call);
    write_atomic(&path, |mut file| {
        std::io::Write::write_all(&mut file, &bytes).map_err(|e| e.to_string())?;
        Ok(file)
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_distinct() {
        assert_eq!(file_name("C-0001_a.b"), "C-0001_a.b.wav");
        let (a, b) = (file_name("../etc/passwd"), file_name("__etc_passwd"));
        assert!(!a.contains('/') && !a.starts_with('.'), "{a}");
        assert_ne!(a, b);
        assert_ne!(file_name("a/b"), file_name("a_b"));
        assert!(file_name(&"x".repeat(5000)).len() < 200);
    }
}
