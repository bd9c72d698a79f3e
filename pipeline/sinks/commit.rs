//! Commits: scored calls -> their rows in every table, all or nothing per call date; and the
//! recovery that makes a rerun after a kill at any instant finish the job exactly once.
//!
//! The protocol (README, "Durable runs"):
//! 1. A commit groups its calls by `call_date`. For each date it writes the `utterances`
//!    and `events` files, then the `calls` file, each named `part-<run_id>_<seq>.parquet`
//!    and each through a temporary name, fsync and rename. The `calls` file is the commit
//!    marker: child files whose `calls` sibling does not exist are not committed.
//! 2. Recovery, at the start of every run (under the output lock): remove temporaries,
//!    remove the rows of superseded call versions (a call processed again keeps only its
//!    latest version), then remove uncommitted child files.
//! 3. A call is skipped only if its `calls` row is there, so a call whose commit did not
//!    finish is processed again; one that did is never processed twice.
//!
//! A reader during a run can see a commit's child rows just before its `calls` rows, and
//! both versions of a reprocessed call until the run ends; after any completed run (and
//! after any recovery) every call is in every table once.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::{Array, Int32Array, StringArray, TimestampMicrosecondArray};
use chrono::{DateTime, Utc};

use super::parquet::{self as pq, SinkError};
use super::tables::{self, FailureRow, RowContext, RunRow};
use crate::record::ScoredCall;

/// Tables whose rows belong to a call and are committed before its `calls` row.
pub const CHILD_TABLES: [&str; 3] = ["utterances", "speech", "events"];

/// `part-<run_id>_<seq>`: the file stem of one commit in every table.
pub fn commit_id(run_id: &str, seq: u32) -> String {
    format!("{run_id}_{seq:05}")
}

/// Write the rows of `calls` to every table; returns the files written. `ctx` carries the run
/// id and the commit time (every call's `processed_at`). `calls` are sorted by date here, so
/// each date's rows are built from a slice of them, without copies.
pub fn commit(
    out_dir: &Path,
    commit: &str,
    calls: &mut [ScoredCall],
    ctx: &RowContext,
) -> Result<Vec<PathBuf>, SinkError> {
    calls.sort_by_key(|c| c.call.source.call_date);
    let mut written = Vec::new();
    for group in calls.chunk_by(|a, b| a.call.source.call_date == b.call.source.call_date) {
        let date = group[0].call.source.call_date;
        let day = pq::date_to_days(date);
        for (table, batch) in tables::build_all(group, ctx)? {
            let partition = out_dir.join(table).join(format!("call_date={}", date.format("%Y-%m-%d")));
            // Child files only when they hold rows, or the partition would not exist otherwise
            // (a query over a day without events finds an empty table, not a missing folder).
            if table != "calls" && batch.num_rows() == 0 && partition.exists() {
                continue;
            }
            written.extend(pq::write_partitioned(out_dir, table, commit, &batch, &[day])?);
        }
    }
    Ok(written)
}

/// What [`recover`] found and removed.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    pub temporaries: usize,
    pub superseded_calls: usize,
    pub uncommitted_files: usize,
}

/// Bring an output folder back to a committed state (see the module docs). Safe to run at any
/// time under the lock, and to be killed at any point: it only removes what is not committed
/// or not current, each file rewrite atomic. Returns what it did and the call versions left
/// in `calls` (one per call), so a run need not read them again.
pub fn recover(out_dir: &Path) -> Result<(Recovered, Vec<pq::CallVersion>), SinkError> {
    let mut recovered = Recovered::default();
    // Only the tables `callqa run` writes (`callqa sample` and `report` may be writing
    // others), and the write probes a killed run left at the top.
    let run_tables = ["calls", "utterances", "speech", "events", "failures", "runs"];
    let entries = run_tables
        .iter()
        .flat_map(|t| walkdir::WalkDir::new(out_dir.join(t)).into_iter().filter_map(Result::ok))
        .chain(walkdir::WalkDir::new(out_dir).min_depth(1).max_depth(1).into_iter().filter_map(Result::ok));
    for entry in entries {
        let name = entry.file_name().to_string_lossy();
        let temporary = (name.starts_with('.') && name.ends_with(".tmp")) || name.starts_with(".callqa-write-probe");
        if entry.file_type().is_file() && temporary {
            super::test_pause();
            fs::remove_file(entry.path()).map_err(|e| write_error(entry.path(), e))?;
            recovered.temporaries += 1;
        }
    }
    let tables: Vec<&str> = CHILD_TABLES.iter().copied().chain(["calls"]).collect();
    let versions = pq::call_versions(out_dir)?;
    recovered.superseded_calls = pq::drop_superseded(out_dir, &tables, &versions)?;
    let current = pq::latest_versions(&versions).into_values().cloned().collect();
    for table in CHILD_TABLES {
        for path in pq::table_files(out_dir, table) {
            let partition = path.parent().and_then(Path::file_name).expect("table files live in partitions");
            let marker = out_dir.join("calls").join(partition).join(path.file_name().expect("a file"));
            if !marker.exists() {
                super::test_pause();
                fs::remove_file(&path).map_err(|e| write_error(&path, e))?;
                recovered.uncommitted_files += 1;
            }
        }
    }
    Ok((recovered, current))
}

fn write_error(path: &Path, e: std::io::Error) -> SinkError {
    SinkError::Write { path: path.to_path_buf(), reason: e.to_string() }
}

fn failures_file(out_dir: &Path) -> PathBuf {
    out_dir.join("failures").join("failures.parquet")
}

/// The `failures` table, by call_id.
pub fn read_failures(out_dir: &Path) -> Result<BTreeMap<String, FailureRow>, SinkError> {
    let path = failures_file(out_dir);
    let mut rows = BTreeMap::new();
    if !path.exists() {
        return Ok(rows);
    }
    for batch in pq::read_file(&path)? {
        let text = |name: &str| pq::column::<StringArray>(&batch, name, &path);
        let (ids, paths, hashes, stages, types, reasons, runs) = (
            text("call_id")?,
            text("source_path")?,
            text("content_sha256")?,
            text("stage")?,
            text("error_type")?,
            text("reason")?,
            text("run_id")?,
        );
        let attempts = pq::column::<Int32Array>(&batch, "attempts", &path)?;
        let times = pq::column::<TimestampMicrosecondArray>(&batch, "failed_at", &path)?;
        for i in 0..batch.num_rows() {
            let row = FailureRow {
                call_id: ids.value(i).to_string(),
                source_path: paths.value(i).to_string(),
                content_sha256: (!hashes.is_null(i)).then(|| hashes.value(i).to_string()),
                stage: stages.value(i).to_string(),
                error_type: types.value(i).to_string(),
                reason: reasons.value(i).to_string(),
                attempts: attempts.value(i).max(0) as u32,
                run_id: runs.value(i).to_string(),
                failed_at: DateTime::<Utc>::from_timestamp_micros(times.value(i)).unwrap_or_default(),
            };
            rows.insert(row.call_id.clone(), row);
        }
    }
    Ok(rows)
}

/// Replace the `failures` table (one small file, rewritten atomically).
pub fn write_failures(out_dir: &Path, rows: &BTreeMap<String, FailureRow>) -> Result<PathBuf, SinkError> {
    let rows: Vec<FailureRow> = rows.values().cloned().collect();
    let path = failures_file(out_dir);
    pq::write_file(&path, &tables::failures(&rows)?)?;
    Ok(path)
}

/// Write (or replace) this run's row of the `runs` table.
pub fn write_run(out_dir: &Path, row: &RunRow) -> Result<PathBuf, SinkError> {
    let path = out_dir.join("runs").join(format!("part-{}.parquet", row.run_id));
    pq::write_file(&path, &tables::runs(row)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_and_uncommitted_child_files_go_committed_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let partition = "call_date=2026-11-20";
        for table in ["calls", "utterances", "events"] {
            fs::create_dir_all(out.join(table).join(partition)).unwrap();
        }
        // Commit r1_00001 finished (calls file present); r1_00002 was killed before its calls file.
        pq::write_file(&out.join("calls").join(partition).join("part-r1_00001.parquet"), &empty_calls()).unwrap();
        for (table, commit) in [("utterances", "r1_00001"), ("events", "r1_00001"), ("utterances", "r1_00002")] {
            let batch = pq::without_column(tables::utterances(&[]).unwrap(), "call_date");
            pq::write_file(&out.join(table).join(partition).join(format!("part-{commit}.parquet")), &batch).unwrap();
        }
        fs::write(out.join("events").join(partition).join(".part-r1_00002.parquet.tmp"), b"half").unwrap();
        let (recovered, _) = recover(out).unwrap();
        assert_eq!(recovered, Recovered { temporaries: 1, superseded_calls: 0, uncommitted_files: 1 });
        assert!(out.join("utterances").join(partition).join("part-r1_00001.parquet").exists());
        assert!(!out.join("utterances").join(partition).join("part-r1_00002.parquet").exists());
        assert_eq!(recover(out).unwrap().0, Recovered::default(), "a second recovery finds nothing to do");
    }

    fn empty_calls() -> arrow::record_batch::RecordBatch {
        let ctx = RowContext { run_id: "r1", processed_at: Utc::now() };
        pq::without_column(tables::calls(&[], &ctx).unwrap(), "call_date")
    }

    #[test]
    fn failures_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let row = FailureRow {
            call_id: "c1".into(),
            source_path: "/x/c1.wav".into(),
            content_sha256: None,
            stage: "read".into(),
            error_type: "permission_denied".into(),
            reason: "Permission denied".into(),
            attempts: 2,
            run_id: "r".into(),
            failed_at: DateTime::<Utc>::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
        };
        let rows = BTreeMap::from([("c1".to_string(), row)]);
        write_failures(dir.path(), &rows).unwrap();
        assert_eq!(read_failures(dir.path()).unwrap(), rows);
    }
}
