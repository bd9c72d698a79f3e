//! One writer per output folder: an advisory lock on `<out>/.callqa.lock`.
//!
//! `flock(2)` through `File::try_lock`: the kernel releases it when the process ends however
//! it ends (kill -9 included), so a stale lock never blocks the next night. The file holds
//! who has it (pid, host, run, start time) so the second run can name the holder. Advisory
//! locks are only as good as the file system: local disks and NFSv4 honour them.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds an output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub run_id: String,
    pub started_at: String,
}

impl Holder {
    /// This process, starting run `run_id`.
    pub fn this_process(run_id: &str, started: chrono::DateTime<chrono::Utc>) -> Holder {
        Holder {
            pid: std::process::id(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            run_id: run_id.into(),
            started_at: started.to_rfc3339(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("output {} is in use by another callqa run ({holder}); wait for it to finish or point --out elsewhere", path.display())]
    Held { path: PathBuf, holder: String },
    #[error("cannot lock output {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
}

/// Held for as long as this value lives.
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    pub fn acquire(out_dir: &Path, holder: &Holder) -> Result<OutputLock, LockError> {
        let path = out_dir.join(".callqa.lock");
        let io = |e: std::io::Error| LockError::Io { path: path.clone(), reason: e.to_string() };
        // Not truncated on open: until we hold the lock, its content is the holder's.
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| serde_json::from_str::<Holder>(&text).ok())
                    .map_or_else(
                        || "holder unknown".to_string(),
                        |h| format!("pid {} on {}, run {}, since {}", h.pid, h.host, h.run_id, h.started_at),
                    );
                return Err(LockError::Held { path: out_dir.to_path_buf(), holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(serde_json::to_string(holder).expect("serialisable").as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(OutputLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            Holder { pid: 42, host: "node-7".into(), run_id: "r1".into(), started_at: "2026-11-25T01:00:00Z".into() };
        let lock = OutputLock::acquire(dir.path(), &first).unwrap();
        let err = OutputLock::acquire(dir.path(), &Holder { pid: 43, ..first.clone() }).unwrap_err().to_string();
        assert!(err.contains("pid 42 on node-7, run r1"), "{err}");
        drop(lock);
        OutputLock::acquire(dir.path(), &Holder { pid: 43, ..first }).unwrap();
    }
}
