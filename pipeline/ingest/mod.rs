//! Ingest: an input path -> the calls to process.
//!
//! In: a folder (searched recursively for `.wav`) or a CSV manifest with a header row
//! (`path` required; `call_id`, `agent_id`, `started_at` (RFC 3339), `agent_channel`
//! optional; relative paths resolve against the manifest's folder). Out: one entry per call,
//! either a [`CallSource`] or the reason that row cannot be a call. Only a missing input or an
//! unreadable manifest is fatal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::record::CallSource;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("input {} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("manifest {}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
}

/// A row or file that cannot become a call: who it was and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub call_id: String,
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
struct ManifestRow {
    path: String,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    agent_channel: Option<String>,
}

fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

fn modified_date(path: &Path) -> Result<NaiveDate, String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| format!("cannot stat file: {e}"))?;
    Ok(DateTime::<Utc>::from(modified).date_naive())
}

fn is_wav(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

/// Find the calls under `input`.
pub fn discover(input: &Path) -> Result<Vec<Result<CallSource, Rejected>>, IngestError> {
    if !input.exists() {
        return Err(IngestError::Missing(input.to_path_buf()));
    }
    let mut found = if input.is_dir() { from_folder(input) } else { from_manifest(input)? };
    reject_duplicate_ids(&mut found);
    Ok(found)
}

fn from_folder(dir: &Path) -> Vec<Result<CallSource, Rejected>> {
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && is_wav(e.path()))
        .map(|e| e.into_path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let call_id = stem(&path);
            match modified_date(&path) {
                Ok(call_date) => {
                    Ok(CallSource { call_id, path, agent_id: None, started_at: None, call_date, agent_channel: None })
                }
                Err(reason) => Err(Rejected { call_id, path, reason }),
            }
        })
        .collect()
}

fn from_manifest(manifest: &Path) -> Result<Vec<Result<CallSource, Rejected>>, IngestError> {
    let fatal = |reason: String| IngestError::Manifest { path: manifest.to_path_buf(), reason };
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(manifest).map_err(|e| fatal(e.to_string()))?;
    let headers = reader.headers().map_err(|e| fatal(e.to_string()))?.clone();
    if !headers.iter().any(|h| h == "path") {
        return Err(fatal("no `path` column in the header row".into()));
    }
    let mut calls = Vec::new();
    for (index, row) in reader.deserialize::<ManifestRow>().enumerate() {
        let line = index + 2;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                calls.push(Err(Rejected {
                    call_id: format!("line {line}"),
                    path: manifest.to_path_buf(),
                    reason: e.to_string(),
                }));
                continue;
            }
        };
        let path = base.join(&row.path);
        let call_id = row.call_id.filter(|s| !s.is_empty()).unwrap_or_else(|| stem(&path));
        let reject = |reason: String| Rejected {
            call_id: call_id.clone(),
            path: path.clone(),
            reason: format!("manifest line {line}: {reason}"),
        };
        let started_at = match row.started_at.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    calls.push(Err(reject(format!("started_at {text:?} is not RFC 3339 ({e})"))));
                    continue;
                }
            },
        };
        let agent_channel = match row.agent_channel.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some("0") => Some(0),
            Some("1") => Some(1),
            Some(other) => {
                calls.push(Err(reject(format!("agent_channel {other:?} must be 0 or 1"))));
                continue;
            }
        };
        let call_date = match started_at {
            Some(t) => Ok(t.date_naive()),
            None => modified_date(&path),
        };
        calls.push(match call_date {
            Ok(call_date) => Ok(CallSource {
                call_id: call_id.clone(),
                path: path.clone(),
                agent_id: row.agent_id.filter(|s| !s.is_empty()),
                started_at,
                call_date,
                agent_channel,
            }),
            Err(reason) => Err(reject(reason)),
        });
    }
    Ok(calls)
}

/// A call_id may appear once: later duplicates are rejected rather than silently merged.
fn reject_duplicate_ids(found: &mut [Result<CallSource, Rejected>]) {
    let mut seen = HashSet::new();
    for entry in found.iter_mut() {
        if let Ok(call) = entry {
            if !seen.insert(call.call_id.clone()) {
                *entry = Err(Rejected {
                    call_id: call.call_id.clone(),
                    path: call.path.clone(),
                    reason: "duplicate call_id (already used by an earlier file)".into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_searched_recursively_for_wav_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        for f in ["z.wav", "a/b/m.WAV", "a/notes.txt", "a/dup.wav", "a/b/dup.wav"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let found = discover(dir.path()).unwrap();
        let ids: Vec<String> = found
            .iter()
            .map(|r| r.as_ref().map_or_else(|e| format!("!{}", e.call_id), |c| c.call_id.clone()))
            .collect();
        assert_eq!(ids, vec!["dup", "m", "!dup", "z"]);
        let today = Utc::now().date_naive();
        assert_eq!(found[0].as_ref().unwrap().call_date, today);
    }

    #[test]
    fn manifest_rows_resolve_paths_and_parse_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("audio")).unwrap();
        std::fs::write(dir.path().join("audio/one.wav"), b"x").unwrap();
        let manifest = dir.path().join("calls.csv");
        std::fs::write(
            &manifest,
            "path,call_id,agent_id,started_at,agent_channel\n\
             audio/one.wav,C1,A7,2026-11-20T23:30:00-02:00,1\n\
             audio/one.wav,,,,\n\
             audio/two.wav,C3,,not-a-date,\n\
             audio/one.wav,C4,,,2\n",
        )
        .unwrap();
        let found = discover(&manifest).unwrap();
        let c1 = found[0].as_ref().unwrap();
        assert_eq!(c1.call_id, "C1");
        assert_eq!(c1.path, dir.path().join("audio/one.wav"));
        assert_eq!(c1.agent_id.as_deref(), Some("A7"));
        assert_eq!(c1.agent_channel, Some(1));
        // 23:30 at UTC-2 is the next day in UTC.
        assert_eq!(c1.call_date, NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
        assert_eq!(found[1].as_ref().unwrap().call_id, "one");
        assert!(found[2].as_ref().unwrap_err().reason.contains("RFC 3339"));
        assert!(found[3].as_ref().unwrap_err().reason.contains("agent_channel"));
    }

    #[test]
    fn fatal_inputs() {
        assert!(matches!(discover(Path::new("/no/such/input")), Err(IngestError::Missing(_))));
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("m.csv");
        std::fs::write(&manifest, "file,id\nx.wav,1\n").unwrap();
        assert!(discover(&manifest).unwrap_err().to_string().contains("path"));
    }
}
