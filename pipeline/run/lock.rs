//! One writer per output folder, or one per shard: advisory locks on `<out>/.callqa.lock` (held
//! exclusively by an unsharded run, shared by shards) and `<out>/.callqa-<shard tag>.lock`
//! (exclusive, one per shard), so shards run side by side while an unsharded run (or
//! `rescore`) waits for all of them, and they for it.
//!
//! `flock(2)` through `File::try_lock`: the kernel releases it when the process ends however
//! it ends (kill -9 included), so a stale lock never blocks the next night. The file holds
//! who has it (pid, host, run, start time) so the second run can name the holder. Advisory
//! locks are only as good as the file system: local disks and NFSv4 honour them. On an object
//! store the same three locks are leases ([`super::lease`]).

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lease::{self, Lease};
use crate::storage::Storage;

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
    _files: Vec<File>,
    _leases: Vec<Lease>,
}

fn open(path: &Path) -> Result<File, LockError> {
    // Not truncated on open: until we hold the lock, its content is the holder's.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LockError::Io { path: path.to_path_buf(), reason: e.to_string() })
}

fn describe(path: &Path) -> String {
    std::fs::read_to_string(path).ok().and_then(|text| serde_json::from_str::<Holder>(&text).ok()).map_or_else(
        || "holder unknown".to_string(),
        |h| format!("pid {} on {}, run {}, since {}", h.pid, h.host, h.run_id, h.started_at),
    )
}

fn write_holder(file: &mut File, path: &Path, holder: &Holder) -> Result<(), LockError> {
    let io = |e: std::io::Error| LockError::Io { path: path.to_path_buf(), reason: e.to_string() };
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(serde_json::to_string(holder).expect("serialisable").as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The shard lock files whose shard is running now.
fn live_shards(out_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out_dir) else { return Vec::new() };
    let mut live: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".callqa-s")))
        .filter(|p| File::open(p).is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))))
        .collect();
    live.sort();
    live
}

impl OutputLock {
    /// The whole output, for an unsharded run or a rescore.
    pub fn acquire(out: &Storage, holder: &Holder) -> Result<OutputLock, LockError> {
        let Some(out_dir) = out.local_root() else {
            return lease::acquire_whole(out, holder)
                .map(|lease| OutputLock { _files: Vec::new(), _leases: vec![lease] });
        };
        let path = out_dir.join(".callqa.lock");
        let mut file = open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let shards = live_shards(out_dir);
                let holder = if shards.is_empty() {
                    describe(&path)
                } else {
                    shards.iter().map(|p| describe(p)).collect::<Vec<_>>().join("; ")
                };
                return Err(LockError::Held { path: out_dir.to_path_buf(), holder });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LockError::Io { path, reason: e.to_string() });
            }
        }
        write_holder(&mut file, &path, holder)?;
        Ok(OutputLock { _files: vec![file], _leases: Vec::new() })
    }

    /// One shard of the output: shared with the other shards, exclusive for this one.
    pub fn acquire_shard(out: &Storage, holder: &Holder, tag: &str) -> Result<OutputLock, LockError> {
        let Some(out_dir) = out.local_root() else {
            let lease = lease::acquire_shard(out, holder, tag)?;
            return Ok(OutputLock { _files: Vec::new(), _leases: vec![lease] });
        };
        let path = out_dir.join(".callqa.lock");
        let whole = open(&path)?;
        match whole.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::Held { path: out_dir.to_path_buf(), holder: describe(&path) });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(LockError::Io { path, reason: e.to_string() }),
        }
        let shard_path = out_dir.join(format!(".callqa-{tag}.lock"));
        let mut shard = open(&shard_path)?;
        match shard.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::Held { path: out_dir.to_path_buf(), holder: describe(&shard_path) });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LockError::Io { path: shard_path, reason: e.to_string() });
            }
        }
        write_holder(&mut shard, &shard_path, holder)?;
        Ok(OutputLock { _files: vec![whole, shard], _leases: Vec::new() })
    }
}

/// Serialises rewrites of table files that belong to no running shard (files of unsharded
/// runs, or of another shard count): two shards dropping superseded rows from the same file
/// would otherwise lose one's update. Blocks until free; held while this value lives.
pub fn rewrite_lock(out: &Storage) -> Result<OutputLock, LockError> {
    let Some(out_dir) = out.local_root() else {
        return lease::acquire_rewrite(out).map(|lease| OutputLock { _files: Vec::new(), _leases: vec![lease] });
    };
    let path = out_dir.join(".callqa-rewrite.lock");
    let file = open(&path)?;
    file.lock().map_err(|e| LockError::Io { path, reason: e.to_string() })?;
    Ok(OutputLock { _files: vec![file], _leases: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            Holder { pid: 42, host: "node-7".into(), run_id: "r1".into(), started_at: "2026-11-25T01:00:00Z".into() };
        let lock = OutputLock::acquire(&Storage::local(dir.path()), &first).unwrap();
        let err = OutputLock::acquire(&Storage::local(dir.path()), &Holder { pid: 43, ..first.clone() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("pid 42 on node-7, run r1"), "{err}");
        drop(lock);
        OutputLock::acquire(&Storage::local(dir.path()), &Holder { pid: 43, ..first.clone() }).unwrap();
    }

    #[test]
    fn shards_run_side_by_side_and_exclude_a_whole_run_and_their_twin() {
        let dir = tempfile::tempdir().unwrap();
        let who = |pid: u32| Holder {
            pid,
            host: "node".into(),
            run_id: format!("r{pid}"),
            started_at: "2026-11-25T01:00:00Z".into(),
        };
        let a = OutputLock::acquire_shard(&Storage::local(dir.path()), &who(1), "s0of2").unwrap();
        let b = OutputLock::acquire_shard(&Storage::local(dir.path()), &who(2), "s1of2").unwrap();
        let twin = OutputLock::acquire_shard(&Storage::local(dir.path()), &who(3), "s1of2").unwrap_err().to_string();
        assert!(twin.contains("pid 2"), "{twin}");
        let whole = OutputLock::acquire(&Storage::local(dir.path()), &who(4)).unwrap_err().to_string();
        assert!(whole.contains("pid 1") && whole.contains("pid 2"), "the running shards are named: {whole}");
        drop((a, b));
        let lock = OutputLock::acquire(&Storage::local(dir.path()), &who(4)).unwrap();
        assert!(
            OutputLock::acquire_shard(&Storage::local(dir.path()), &who(5), "s0of2").is_err(),
            "a whole run keeps shards out"
        );
        drop(lock);
    }
}
