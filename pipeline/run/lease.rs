//! Leases: the output locks of [`super::lock`] on an object store, where there is no `flock`.
//!
//! A lease is an object `<out>/.callqa-locks/<name>.json` naming its holder and when it
//! expires. It is taken with a conditional put that succeeds only if the object does not exist
//! (`If-None-Match: *`), or, for a lease whose holder stopped renewing it, only if it has not
//! changed since it was read (`If-Match: <etag>`); so of two processes racing for one lease
//! exactly one wins. The holder renews it every third of its length (the same conditional put
//! against its own last version). A killed holder's lease lapses after `CALLQA_LEASE_S`
//! seconds (60 by default): whoever wants it next waits that long, once, and takes it over.
//! A holder that finds its lease taken (it stalled past the expiry) stops the process at once,
//! so two writers never hold one lease; what it committed stays committed. A store that
//! ignores `If-None-Match` is refused before the first lease (a create-only put of one
//! probe object, twice: the second must fail).
//!
//! The three locks: `whole` (an unsharded run or `rescore`: no shard may run), `shard-<tag>`
//! (one per shard: no `whole` may be live), and `rewrite` (waited for, not refused).

use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{error, info};

use super::lock::{Holder, LockError};
use crate::storage::{Storage, Version};

const FOLDER: &str = ".callqa-locks";

/// Held while this value lives; renewed by a thread of its own.
#[derive(Debug)]
pub struct Lease {
    out: Storage,
    key: String,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseFile {
    #[serde(flatten)]
    holder: Holder,
    expires_at: DateTime<Utc>,
}

fn lease_length() -> Duration {
    let seconds = std::env::var("CALLQA_LEASE_S").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(60.0);
    Duration::from_secs_f64(seconds.max(1.0))
}

fn content(holder: &Holder) -> Vec<u8> {
    let expires_at = Utc::now() + lease_length();
    serde_json::to_vec(&LeaseFile { holder: holder.clone(), expires_at }).expect("serialisable")
}

fn io(out: &Storage, key: &str, e: std::io::Error) -> LockError {
    LockError::Io { path: out.describe(key).into(), reason: e.to_string() }
}

/// A lease as found: its holder, whether it lapsed, and its version.
fn read(out: &Storage, key: &str) -> Result<Option<(LeaseFile, Option<Version>)>, LockError> {
    match out.read_versioned(key) {
        Ok((bytes, version)) => {
            // A lease nobody can read is treated as lapsed: it names no holder to wait for.
            let found = serde_json::from_slice(&bytes).unwrap_or(LeaseFile {
                holder: Holder { pid: 0, host: "?".into(), run_id: "?".into(), started_at: "?".into() },
                expires_at: DateTime::<Utc>::MIN_UTC,
            });
            Ok(Some((found, version)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(out, key, e)),
    }
}

fn describe(lease: &LeaseFile) -> String {
    let h = &lease.holder;
    format!("pid {} on {}, run {}, since {}", h.pid, h.host, h.run_id, h.started_at)
}

/// Refuse a store that accepts a create-only put over an existing object: there a lease would
/// let two holders in. Checked once per process and store, with an object of this process's.
fn check_conditional_puts(out: &Storage, holder: &Holder) -> Result<(), LockError> {
    static CHECKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().expect("not poisoned");
    if checked.contains(&out.describe("")) {
        return Ok(());
    }
    let key = format!("{FOLDER}/.probe-{}-{}", holder.host, holder.pid);
    let first = out.create(&key, Vec::new()).map_err(|e| io(out, &key, e))?;
    let second = out.create(&key, Vec::new()).map_err(|e| io(out, &key, e))?;
    out.remove(&key).map_err(|e| io(out, &key, e))?;
    if first.is_none() || second.is_some() {
        return Err(LockError::Io {
            path: out.describe("").into(),
            reason: "this store does not honour If-None-Match (a create-only put replaced an existing object), so it cannot hold callqa's locks".into(),
        });
    }
    checked.push(out.describe(""));
    Ok(())
}

/// Take lease `name`, or say who holds it. A lease that is not renewed while we wait out its
/// expiry was left by a dead holder and is taken over.
fn take(out: &Storage, name: &str, holder: &Holder) -> Result<Result<Lease, String>, LockError> {
    check_conditional_puts(out, holder)?;
    let key = format!("{FOLDER}/{name}.json");
    for _ in 0..2 {
        if let Some(version) = out.create(&key, content(holder)).map_err(|e| io(out, &key, e))? {
            return Ok(Ok(Lease::start(out, key, holder, version)));
        }
        let Some((found, version)) = read(out, &key)? else { continue };
        let lapsed = found.expires_at <= Utc::now();
        if !lapsed {
            // Wait for it to lapse once: a live holder renews it before then.
            let wait = (found.expires_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(500);
            if wait > lease_length() + Duration::from_secs(1) {
                return Ok(Err(describe(&found)));
            }
            info!(lease = %out.describe(&key), holder = %describe(&found), "waiting for a lease to lapse");
            std::thread::sleep(wait);
            match read(out, &key)? {
                Some((again, v)) if v == version && again.expires_at <= Utc::now() => {}
                Some((again, _)) => return Ok(Err(describe(&again))),
                None => continue,
            }
        }
        let Some(version) = version else { return Ok(Err(describe(&found))) };
        if let Some(version) = out.replace(&key, content(holder), &version).map_err(|e| io(out, &key, e))? {
            info!(lease = %out.describe(&key), previous = %describe(&found), "took over a lapsed lease");
            return Ok(Ok(Lease::start(out, key, holder, version)));
        }
    }
    Ok(Err(read(out, &key)?.map_or_else(|| "holder unknown".into(), |(found, _)| describe(&found))))
}

/// Whether lease `name` is held now, and by whom.
fn live(out: &Storage, name: &str) -> Result<Option<String>, LockError> {
    Ok(read(out, &format!("{FOLDER}/{name}.json"))?
        .filter(|(found, _)| found.expires_at > Utc::now())
        .map(|(found, _)| describe(&found)))
}

fn held(out: &Storage, holder: String) -> LockError {
    LockError::Held { path: out.describe("").into(), holder }
}

/// The whole output: refused while any shard holds its lease.
pub fn acquire_whole(out: &Storage, holder: &Holder) -> Result<Lease, LockError> {
    let lease = take(out, "whole", holder)?.map_err(|h| held(out, h))?;
    let entries = out.list(FOLDER).map_err(|e| io(out, FOLDER, e))?;
    let mut shards = Vec::new();
    for entry in entries {
        let Some(name) = entry.key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")) else { continue };
        if name.starts_with("shard-") {
            shards.extend(live(out, name)?);
        }
    }
    if shards.is_empty() {
        Ok(lease)
    } else {
        Err(held(out, shards.join("; ")))
    }
}

/// One shard: refused while an unsharded run holds the whole output.
pub fn acquire_shard(out: &Storage, holder: &Holder, tag: &str) -> Result<Lease, LockError> {
    let lease = take(out, &format!("shard-{tag}"), holder)?.map_err(|h| held(out, h))?;
    match live(out, "whole")? {
        Some(whole) => Err(held(out, whole)),
        None => Ok(lease),
    }
}

/// The rewrite lock: waited for.
pub fn acquire_rewrite(out: &Storage) -> Result<Lease, LockError> {
    let holder = Holder::this_process("rewrite", Utc::now());
    loop {
        if let Ok(lease) = take(out, "rewrite", &holder)? {
            return Ok(lease);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Lease {
    fn start(out: &Storage, key: String, holder: &Holder, version: Version) -> Lease {
        let (stop, stopped) = mpsc::channel::<()>();
        let (store, lease_key, holder) = (out.clone(), key.clone(), holder.clone());
        let renewer = std::thread::spawn(move || {
            let mut version = version;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(lease_length() / 3) {
                match store.replace(&lease_key, content(&holder), &version) {
                    Ok(Some(next)) => version = next,
                    Ok(None) => {
                        error!(lease = %store.describe(&lease_key), "another process took this lease over (this one stalled past its expiry): stopping");
                        std::process::exit(2);
                    }
                    // A store that does not answer: try again at the next renewal.
                    Err(e) => error!(lease = %store.describe(&lease_key), error = %e, "cannot renew the lease"),
                }
            }
        });
        Lease { out: out.clone(), key, stop: Some(stop), renewer: Some(renewer) }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        let _ = self.out.remove(&self.key);
    }
}
