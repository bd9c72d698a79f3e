//! Ingest: an input path -> the calls to process.
//!
//! In: a folder (searched recursively for `.wav`) or a CSV manifest with a header row
//! (`path` required; `call_id`, `agent_id`, `started_at` (RFC 3339), `agent_channel`
//! optional; relative paths resolve against the manifest's folder). Out: one entry per call,
//! either a [`CallSource`] or the reason that row cannot be a call. Only a missing input or an
//! unreadable manifest is fatal. Nothing is passed over in silence: a folder that cannot be
//! read, a dangling symlink, a symlink loop, or a `.wav` that is not a regular file (a FIFO,
//! a device) is a rejected entry, and so is a manifest path that is not a regular file, which
//! is refused before anything reads it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::record::{CallSource, ErrorType};

mod remote;

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
    pub error_type: ErrorType,
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

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// The modification date and size of a regular file; anything else (missing, a FIFO, a
/// device, a folder, a symlink loop) is refused here, before any read could hang or run
/// forever.
fn regular_file(path: &Path) -> Result<(NaiveDate, u64), (ErrorType, String)> {
    let metadata = std::fs::metadata(path).map_err(|e| (ErrorType::of_io(&e), format!("cannot stat file: {e}")))?;
    if !metadata.is_file() {
        return Err((ErrorType::NotRegularFile, format!("not a regular file ({})", file_kind(&metadata.file_type()))));
    }
    let modified = metadata.modified().map_err(|e| (ErrorType::IoError, format!("no modification time: {e}")))?;
    Ok((DateTime::<Utc>::from(modified).date_naive(), metadata.len()))
}

pub(crate) const MODIFIED: &str = "the file's modification time";

/// A call date from 1970 to two days from now (time zones), else an error naming where it
/// came from. A date far in the future would also make a partition folder such as
/// `call_date=+10000-01-01`, which readers type as text.
pub(crate) fn plausible_date(date: NaiveDate, source: &str) -> Result<NaiveDate, (ErrorType, String)> {
    let latest = Utc::now().date_naive() + chrono::Days::new(2);
    let earliest = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    if (earliest..=latest).contains(&date) {
        Ok(date)
    } else {
        Err((
            ErrorType::ImplausibleDate,
            format!("{source} dates the call {date}, not between {earliest} and {latest}: is a clock wrong?"),
        ))
    }
}

fn file_kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

pub(crate) fn is_wav(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

/// Find the calls under `input`: a local folder or manifest, or an object store's prefix or
/// manifest ([`remote`]).
pub fn discover_input(input: &str) -> Result<Vec<Result<CallSource, Rejected>>, IngestError> {
    if crate::storage::is_url(input) {
        let mut found = remote::discover(input)?;
        reject_duplicate_ids(&mut found);
        return Ok(found);
    }
    discover(Path::new(input))
}

/// Find the calls under a local `input`.
pub fn discover(input: &Path) -> Result<Vec<Result<CallSource, Rejected>>, IngestError> {
    if !input.exists() {
        return Err(IngestError::Missing(input.to_path_buf()));
    }
    let mut found = if input.is_dir() { from_folder(input) } else { from_manifest(input)? };
    reject_duplicate_ids(&mut found);
    Ok(found)
}

fn from_folder(dir: &Path) -> Vec<Result<CallSource, Rejected>> {
    let mut found: Vec<(PathBuf, Option<Rejected>)> = Vec::new();
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let reject = |path: &Path, error_type: ErrorType, reason: String| {
        (path.to_path_buf(), Some(Rejected { call_id: stem(path), path: path.to_path_buf(), error_type, reason }))
    };
    // Each recording once, however many links lead to it.
    let mut seen_files = HashSet::new();
    let mut walk = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name().into_iter();
    while let Some(entry) = walk.next() {
        match entry {
            Ok(e) if e.file_type().is_dir() => {
                // A link to a folder above the input (`..`, `/`) would walk the input again,
                // or the whole disk, before walkdir sees a loop.
                let target = e.path_is_symlink().then(|| e.path().canonicalize().ok()).flatten();
                if target.is_some_and(|t| root.starts_with(t)) {
                    found.push(reject(
                        e.path(),
                        ErrorType::SymlinkLoop,
                        "symlink loop: this link points to a folder that holds the input".into(),
                    ));
                    walk.skip_current_dir();
                }
            }
            Ok(e) if is_wav(e.path()) => {
                if seen_files.insert(e.path().canonicalize().unwrap_or_else(|_| e.path().to_path_buf())) {
                    found.push((e.into_path(), None));
                }
            }
            Ok(_) => {}
            // A folder we cannot list, a dangling symlink or a symlink loop: say so.
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                let error_type = if e.loop_ancestor().is_some() {
                    ErrorType::SymlinkLoop
                } else {
                    e.io_error().map_or(ErrorType::IoError, ErrorType::of_io)
                };
                let reason = match error_type {
                    ErrorType::SymlinkLoop => "symlink loop: this link points back to a folder above it".to_string(),
                    ErrorType::NotFound => "dangling symlink: its target does not exist".to_string(),
                    _ => format!("cannot read: {}", e.io_error().map_or_else(|| e.to_string(), |io| io.to_string())),
                };
                found.push(reject(&path, error_type, reason));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
        .into_iter()
        .map(|(path, rejected)| {
            if let Some(rejected) = rejected {
                return Err(rejected);
            }
            let call_id = stem(&path);
            match regular_file(&path).and_then(|(date, size)| Ok((plausible_date(date, MODIFIED)?, size))) {
                Ok((call_date, size)) => Ok(CallSource {
                    call_id,
                    path,
                    size_bytes: Some(size),
                    agent_id: None,
                    started_at: None,
                    call_date,
                    agent_channel: None,
                }),
                Err((error_type, reason)) => Err(Rejected { call_id, path, error_type, reason }),
            }
        })
        .collect()
}

fn from_manifest(manifest: &Path) -> Result<Vec<Result<CallSource, Rejected>>, IngestError> {
    let fatal = |reason: String| IngestError::Manifest { path: manifest.to_path_buf(), reason };
    // Opening a FIFO would wait for a writer for ever.
    let metadata = std::fs::metadata(manifest).map_err(|e| fatal(e.to_string()))?;
    if !metadata.is_file() {
        return Err(fatal(format!("not a regular file ({})", file_kind(&metadata.file_type()))));
    }
    parse_manifest(std::fs::File::open(manifest).map_err(|e| fatal(e.to_string()))?, manifest)
}

/// The calls a manifest lists, read from `input`; relative paths are relative to the folder
/// of `manifest` (which names the manifest in errors).
pub fn parse_manifest(
    input: impl std::io::Read,
    manifest: &Path,
) -> Result<Vec<Result<CallSource, Rejected>>, IngestError> {
    let base = manifest.parent().unwrap_or(Path::new("."));
    let locate = |row_path: &str| {
        let path = base.join(row_path);
        let found = regular_file(&path).map(|(modified, size)| (modified, Some(size)));
        (path, found)
    };
    parse_rows(input, manifest, &locate)
}

/// Where a manifest row's recording is, and its modification date and size (or why it cannot
/// be read).
pub(crate) type Located = (PathBuf, Result<(NaiveDate, Option<u64>), (ErrorType, String)>);

/// The calls a manifest lists, each row's `path` found by `locate`.
pub(crate) fn parse_rows(
    input: impl std::io::Read,
    manifest: &Path,
    locate: &dyn Fn(&str) -> Located,
) -> Result<Vec<Result<CallSource, Rejected>>, IngestError> {
    let fatal = |reason: String| IngestError::Manifest { path: manifest.to_path_buf(), reason };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
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
                    error_type: ErrorType::ManifestRow,
                    reason: e.to_string(),
                }));
                continue;
            }
        };
        let (path, found) = locate(&row.path);
        let call_id = row.call_id.filter(|s| !s.is_empty()).unwrap_or_else(|| stem(&path));
        let reject = |error_type: ErrorType, reason: String| Rejected {
            call_id: call_id.clone(),
            path: path.clone(),
            error_type,
            reason: format!("manifest line {line}: {reason}"),
        };
        let started_at = match row.started_at.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    calls.push(Err(reject(
                        ErrorType::ManifestRow,
                        format!("started_at {text:?} is not RFC 3339 ({e})"),
                    )));
                    continue;
                }
            },
        };
        let agent_channel = match row.agent_channel.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some("0") => Some(0),
            Some("1") => Some(1),
            Some(other) => {
                calls.push(Err(reject(ErrorType::ManifestRow, format!("agent_channel {other:?} must be 0 or 1"))));
                continue;
            }
        };
        // Checked even when started_at dates the call: a FIFO or device must never be read.
        let size_bytes = found.as_ref().ok().and_then(|(_, size)| *size);
        let call_date = found.and_then(|(modified, _)| match started_at {
            Some(t) => plausible_date(t.date_naive(), &format!("started_at {}", t.to_rfc3339())),
            None => plausible_date(modified, MODIFIED),
        });
        calls.push(match call_date {
            Ok(call_date) => Ok(CallSource {
                call_id: call_id.clone(),
                path: path.clone(),
                size_bytes,
                agent_id: row.agent_id.filter(|s| !s.is_empty()),
                started_at,
                call_date,
                agent_channel,
            }),
            Err((error_type, reason)) => Err(reject(error_type, reason)),
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
                    error_type: ErrorType::DuplicateCallId,
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
    fn special_files_links_and_unreadable_folders_are_rejected_by_name() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("good.wav"), b"x").unwrap();
        let fifo = std::ffi::CString::new(d.join("pipe.wav").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        symlink(d.join("missing.wav"), d.join("dangling.wav")).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        symlink(d, d.join("sub/loop")).unwrap();
        std::fs::create_dir(d.join("locked")).unwrap();
        std::fs::write(d.join("locked/hidden.wav"), b"x").unwrap();
        std::fs::set_permissions(d.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
        let can_bypass = std::fs::read_dir(d.join("locked")).is_ok(); // root ignores permissions
        let found = discover(d).unwrap();
        std::fs::set_permissions(d.join("locked"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let rejected =
            |id: &str| found.iter().find_map(|r| r.as_ref().err().filter(|e| e.call_id == id).map(|e| e.error_type));
        assert_eq!(rejected("pipe"), Some(ErrorType::NotRegularFile));
        assert_eq!(rejected("dangling"), Some(ErrorType::NotFound));
        assert_eq!(rejected("loop"), Some(ErrorType::SymlinkLoop));
        if !can_bypass {
            assert_eq!(rejected("locked"), Some(ErrorType::PermissionDenied));
        }
        assert!(found.iter().any(|r| r.as_ref().is_ok_and(|c| c.call_id == "good")));

        // A manifest naming a FIFO or a device refuses it without reading it.
        let manifest = d.join("m.csv");
        std::fs::write(&manifest, format!("path,call_id\npipe.wav,p\n/dev/zero,z\n{}/good.wav,g\n", d.display()))
            .unwrap();
        let found = discover(&manifest).unwrap();
        let types: Vec<Option<ErrorType>> = found.iter().map(|r| r.as_ref().err().map(|e| e.error_type)).collect();
        assert_eq!(types, vec![Some(ErrorType::NotRegularFile), Some(ErrorType::NotRegularFile), None]);
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
