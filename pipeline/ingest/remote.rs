//! Ingest from an object store. In: `s3://bucket/prefix` (every `.wav` object under it, in key
//! order) or `s3://bucket/path/manifest.csv` (the manifest format of the folder case; relative
//! paths resolve against the manifest's prefix, and a row may also give a whole URL). Out: the
//! same entries as from a disk, each `path` the object's URL and `size_bytes` its listed size;
//! the call date is `started_at`, else the object's last-modified time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{is_wav, plausible_date, stem, IngestError, Located, Rejected, MODIFIED};
use crate::record::{CallSource, ErrorType};
use crate::storage::{self, Entry, Storage};

pub fn discover(url: &str) -> Result<Vec<Result<CallSource, Rejected>>, IngestError> {
    let missing = |reason: String| IngestError::Manifest { path: url.into(), reason };
    if url.to_ascii_lowercase().ends_with(".csv") {
        let (folder, name) = url.rsplit_once('/').expect("a URL has a slash");
        let store = Storage::parse(folder).map_err(|e| missing(e.reason))?;
        let text = store.read(name).map_err(|e| missing(format!("cannot read: {e}")))?;
        let listed = listing(&store, url)?;
        let locate = |row_path: &str| -> Located {
            if storage::is_url(row_path) {
                return (PathBuf::from(row_path), stat(row_path));
            }
            let key = normalise(row_path);
            let found = listed.get(key.as_str()).map(|e| (e.modified.date_naive(), Some(e.size)));
            (PathBuf::from(store.describe(&key)), found.ok_or((ErrorType::NotFound, "no such object".into())))
        };
        return super::parse_rows(&text[..], Path::new(url), &locate);
    }
    let store = Storage::parse(url).map_err(|e| missing(e.reason))?;
    let entries: Vec<Entry> = listing(&store, url)?.into_values().collect();
    if entries.is_empty() {
        return Err(IngestError::Missing(url.into()));
    }
    let mut found: Vec<Result<CallSource, Rejected>> = entries
        .into_iter()
        .filter(|e| is_wav(Path::new(&e.key)))
        .map(|entry| {
            let path = PathBuf::from(store.describe(&entry.key));
            let call_id = stem(&path);
            match plausible_date(entry.modified.date_naive(), MODIFIED) {
                Ok(call_date) => Ok(CallSource {
                    call_id,
                    path,
                    size_bytes: Some(entry.size),
                    agent_id: None,
                    started_at: None,
                    call_date,
                    agent_channel: None,
                }),
                Err((error_type, reason)) => Err(Rejected { call_id, path, error_type, reason }),
            }
        })
        .collect();
    found.sort_by(|a, b| entry_path(a).cmp(entry_path(b)));
    Ok(found)
}

fn entry_path(entry: &Result<CallSource, Rejected>) -> &Path {
    entry.as_ref().map_or_else(|r| r.path.as_path(), |c| c.path.as_path())
}

/// Every object under the store's prefix, by key.
fn listing(store: &Storage, url: &str) -> Result<HashMap<String, Entry>, IngestError> {
    let entries =
        store.list("").map_err(|e| IngestError::Manifest { path: url.into(), reason: format!("cannot list: {e}") })?;
    Ok(entries.into_iter().map(|e| (e.key.clone(), e)).collect())
}

/// `a/./b/../c.wav` -> `a/c.wav`: object keys have no folders to walk.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// One object named by its whole URL: its date and size.
fn stat(url: &str) -> Result<(chrono::NaiveDate, Option<u64>), (ErrorType, String)> {
    let (store, key) = storage::object(url).map_err(|e| (ErrorType::IoError, e.reason))?;
    let folder = key.rsplit_once('/').map_or("", |(folder, _)| folder);
    let entries = store.list(folder).map_err(|e| (ErrorType::IoError, format!("cannot list: {e}")))?;
    entries
        .into_iter()
        .find(|e| e.key == key)
        .map(|e| (e.modified.date_naive(), Some(e.size)))
        .ok_or((ErrorType::NotFound, "no such object".into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_manifest_paths_become_keys() {
        assert_eq!(super::normalise("./calls/../audio//a.wav"), "audio/a.wav");
    }
}
