//! Commits: scored calls -> their rows in every table, all or nothing per call date; and the
//! recovery that makes a rerun after a kill at any instant finish the job exactly once.
//!
//! The protocol (README, "Durable runs"):
//! 1. A commit groups its calls by `call_date`. For each date it writes the `utterances`
//!    and `events` files, then the `calls` file, each named `part-<run_id>_<seq>.parquet`
//!    and each written whole or not at all (a temporary, fsync and rename on a disk; one PUT
//!    on an object store). The `calls` file is the commit marker: child files whose `calls`
//!    sibling does not exist are not committed.
//! 2. Recovery, at the start of every run (under the output lock): finish an interrupted
//!    compaction, remove temporaries, remove the rows of superseded call versions (a call
//!    processed again keeps only its latest version; looked for in the partitions of the
//!    run's input and of runs that did not finish, see [`mark_open`]), then remove
//!    uncommitted child files.
//! 3. A call is skipped only if its `calls` row is there, so a call whose commit did not
//!    finish is processed again; one that did is never processed twice.
//!
//! A reader during a run can see a commit's child rows just before its `calls` rows, and
//! both versions of a reprocessed call until the run ends; after any completed run (and
//! after any recovery) every call is in every table once.
//!
//! Shards ([`crate::run::shard`]) share the folder: a shard's recovery works on its own calls
//! and on the files its tag names, never on another running shard's ([`Scope`]). Files no
//! running shard owns (written unsharded, or with another shard count) are rewritten under
//! [`crate::run::lock::rewrite_lock`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::{Array, Int32Array, StringArray, TimestampMicrosecondArray};
use chrono::{DateTime, Utc};

use super::parquet::{self as pq, Partitions, SinkError};
use super::tables::{self, FailureRow, RowContext, RunRow};
use crate::record::ScoredCall;
use crate::run::shard::Shard;
use crate::storage::Storage;

/// What a recovery may touch: everything (an unsharded run, under the exclusive lock), or one
/// shard's calls and the files no other shard of the same count names.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub shard: Option<&'a Shard>,
}

impl Scope<'_> {
    pub fn call(&self, call_id: &str) -> bool {
        self.shard.is_none_or(|s| s.owns(call_id))
    }

    /// A file name this scope alone answers for: every file when unsharded, else those its
    /// shard's tag names (an ownerless file may still hold other shards' calls).
    pub fn answers_for(&self, name: &str) -> bool {
        self.shard.is_none_or(|shard| shard_of_name(name, shard.count) == Some(shard.index))
    }

    /// A file name this recovery may remove or rewrite.
    pub fn file(&self, name: &str) -> bool {
        let Some(shard) = self.shard else { return true };
        match shard_of_name(name, shard.count) {
            Some(index) => index == shard.index,
            None => true,
        }
    }
}

/// The shard of `count` whose tag (`-s<k>of<count>`, then no digit) a file name carries.
fn shard_of_name(name: &str, count: u32) -> Option<u32> {
    let pattern = format!("of{count}");
    name.match_indices(&pattern).find_map(|(at, _)| {
        let after = name[at + pattern.len()..].chars().next();
        if after.is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        let digits = name[..at].rsplit_once("-s")?.1;
        digits.parse().ok()
    })
}

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
    out: &Storage,
    commit: &str,
    calls: &mut [ScoredCall],
    ctx: &RowContext,
) -> Result<Vec<String>, SinkError> {
    calls.sort_by_key(|c| c.call.source.call_date);
    let mut written = Vec::new();
    for group in calls.chunk_by(|a, b| a.call.source.call_date == b.call.source.call_date) {
        let date = group[0].call.source.call_date;
        let day = pq::date_to_days(date);
        for (table, batch) in tables::build_all(group, ctx)? {
            // Child files only when they hold rows, or the partition would not exist otherwise
            // (a query over a day without events finds an empty table, not a missing folder).
            if table != "calls" && batch.num_rows() == 0 {
                let partition = format!("{table}/call_date={}", date.format("%Y-%m-%d"));
                if !pq::table_files(out, &partition)?.is_empty() {
                    continue;
                }
            }
            written.extend(pq::write_partitioned(out, table, commit, &batch, &[day])?);
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
/// or not current, each file rewrite atomic. Superseded rows are looked for in `partitions`
/// (a run's input dates) and in those of runs that did not finish ([`mark_open`]). Returns
/// what it did and the call versions left in `partitions` (one per call), so a run need not
/// read them again.
pub fn recover(
    out: &Storage,
    scope: Scope,
    partitions: &Partitions,
) -> Result<(Recovered, Vec<pq::CallVersion>), SinkError> {
    let mut recovered = Recovered::default();
    super::compact::finish_interrupted(out)?;
    // Object stores have no temporaries: a PUT lands whole.
    if let Some(out_dir) = out.local_root() {
        recovered.temporaries = remove_temporaries(out_dir, scope)?;
    }
    let mut partitions = partitions.clone();
    let open_runs = open_runs(out, scope)?;
    for date in open_runs.iter().flat_map(|(_, dates)| dates) {
        partitions.add(date);
    }
    let tables: Vec<&str> = CHILD_TABLES.iter().copied().chain(["calls"]).collect();
    let mut versions = pq::call_versions(out, &partitions)?;
    versions.retain(|v| scope.call(&v.call_id));
    recovered.superseded_calls = pq::drop_superseded(out, &tables, &versions, &partitions)?;
    let current = pq::latest_versions(&versions).into_values().cloned().collect();
    // A child file is committed when the calls file of its name is in its partition.
    let partition_and_name = |key: &str| format!("{}/{}", pq::file_name(pq::folder(key)), pq::file_name(key));
    let markers: HashSet<String> = pq::table_files(out, "calls")?.iter().map(|k| partition_and_name(k)).collect();
    for table in CHILD_TABLES {
        for key in pq::table_files(out, table)? {
            if scope.file(pq::file_name(&key)) && !markers.contains(&partition_and_name(&key)) {
                super::test_pause();
                out.remove(&key).map_err(|e| write_error(out, &key, e))?;
                recovered.uncommitted_files += 1;
            }
        }
    }
    for (key, _) in open_runs {
        out.remove(&key).map_err(|e| write_error(out, &key, e))?;
    }
    Ok((recovered, current))
}

/// Remove what killed writers left in a local output: temporaries and write probes.
fn remove_temporaries(out_dir: &Path, scope: Scope) -> Result<usize, SinkError> {
    // Only the tables `callqa run` writes (`callqa sample` and `report` may be writing
    // others), its notes, and the write probes a killed run left at the top.
    let run_tables = ["calls", "utterances", "speech", "events", "failures", "runs", OPEN_RUNS];
    let entries = run_tables
        .iter()
        .flat_map(|t| walkdir::WalkDir::new(out_dir.join(t)).into_iter().filter_map(Result::ok))
        .chain(walkdir::WalkDir::new(out_dir).min_depth(1).max_depth(1).into_iter().filter_map(Result::ok));
    let mut removed = 0;
    for entry in entries {
        let name = entry.file_name().to_string_lossy();
        let temporary = (name.starts_with('.') && name.ends_with(".tmp")) || name.starts_with(".callqa-write-probe");
        if entry.file_type().is_file() && temporary && scope.file(&name) {
            super::test_pause();
            fs::remove_file(entry.path())
                .map_err(|e| SinkError::Write { path: entry.path().to_path_buf(), reason: e.to_string() })?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Where runs that may leave superseded rows behind say which partitions they write.
const OPEN_RUNS: &str = ".callqa-open-runs";

/// Record, before its first commit, the call dates a run (or rescore) is about to write:
/// if it dies before its last [`recover`], the next recovery cleans those partitions
/// without reading the rest of the history. The last recovery removes the note.
pub fn mark_open(out: &Storage, run_id: &str, dates: &BTreeSet<String>) -> Result<(), SinkError> {
    let key = format!("{OPEN_RUNS}/{run_id}.dates");
    let text = dates.iter().map(|d| format!("{d}\n")).collect::<String>();
    out.write(&key, text.into_bytes()).map_err(|e| write_error(out, &key, e))
}

/// The notes of [`mark_open`] this scope answers for (its own shard's, or all when
/// unsharded), with their dates.
fn open_runs(out: &Storage, scope: Scope) -> Result<Vec<(String, Vec<String>)>, SinkError> {
    let mut found = Vec::new();
    for entry in out.list(OPEN_RUNS).unwrap_or_default() {
        let name = pq::file_name(&entry.key);
        if name.starts_with('.') || !name.ends_with(".dates") || !scope.answers_for(name) {
            continue;
        }
        let text = out.read(&entry.key).map_err(|e| read_error(out, &entry.key, e))?;
        found.push((entry.key, String::from_utf8_lossy(&text).lines().map(str::to_string).collect()));
    }
    Ok(found)
}

/// A failed write of `key`, named as the user would name it.
pub(super) fn write_error(out: &Storage, key: &str, e: std::io::Error) -> SinkError {
    SinkError::Write { path: out.describe(key).into(), reason: e.to_string() }
}

fn read_error(out: &Storage, key: &str, e: std::io::Error) -> SinkError {
    SinkError::Read { path: out.describe(key).into(), reason: e.to_string() }
}

/// The failures file of an unsharded run, or of one shard (each shard keeps its own, so
/// shards never write the same file; the table is their union).
fn failures_file(shard: Option<&Shard>) -> String {
    shard.map_or("failures/failures.parquet".to_string(), |s| format!("failures/failures-{}.parquet", s.tag()))
}

/// The failures of the calls in `scope`, by call_id, gathered into its own failures file: rows
/// of its calls in the files of unsharded runs or of another shard count move into it (its
/// own file written first, so a crash leaves a duplicate, never a loss). An unsharded run
/// gathers every shard's. Call under the lock that allows the rewrites (see the module docs).
pub fn adopt_failures(out: &Storage, scope: Scope) -> Result<BTreeMap<String, FailureRow>, SinkError> {
    let own = failures_file(scope.shard);
    let mut rows = read_failures_file(out, &own)?;
    let mut others: Vec<String> = pq::table_files(out, "failures")?;
    others.retain(|key| *key != own && pq::file_name(key).starts_with("failures") && scope.file(pq::file_name(key)));
    for key in others {
        let (mine, theirs): (BTreeMap<String, FailureRow>, BTreeMap<String, FailureRow>) =
            read_failures_file(out, &key)?.into_iter().partition(|(id, _)| scope.call(id));
        let moved = !mine.is_empty();
        if moved {
            for (id, row) in mine {
                rows.entry(id).or_insert(row);
            }
            write_failures_file(out, &own, &rows)?;
        }
        if theirs.is_empty() {
            out.remove(&key).map_err(|e| write_error(out, &key, e))?;
        } else if moved {
            write_failures_file(out, &key, &theirs)?;
        }
    }
    Ok(rows)
}

fn read_failures_file(out: &Storage, key: &str) -> Result<BTreeMap<String, FailureRow>, SinkError> {
    let path = PathBuf::from(out.describe(key));
    let mut rows = BTreeMap::new();
    if !out.exists(key).map_err(|e| read_error(out, key, e))? {
        return Ok(rows);
    }
    for batch in pq::read_table_file(out, key, None)? {
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
pub fn write_failures(
    out: &Storage,
    shard: Option<&Shard>,
    rows: &BTreeMap<String, FailureRow>,
) -> Result<String, SinkError> {
    let key = failures_file(shard);
    write_failures_file(out, &key, rows)?;
    Ok(key)
}

fn write_failures_file(out: &Storage, key: &str, rows: &BTreeMap<String, FailureRow>) -> Result<(), SinkError> {
    let rows: Vec<FailureRow> = rows.values().cloned().collect();
    pq::write_table_file(out, key, &tables::failures(&rows)?)
}

/// Write (or replace) this run's row of the `runs` table.
pub fn write_run(out: &Storage, row: &RunRow) -> Result<String, SinkError> {
    let key = format!("runs/part-{}.parquet", row.run_id);
    pq::write_table_file(out, &key, &tables::runs(row)?)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_touches_its_own_and_ownerless_files_only() {
        let shard = Shard { index: 1, count: 3 };
        let scope = Scope { shard: Some(&shard) };
        for (name, mine) in [
            ("part-20261126T010000Z-ab12cd34-s1of3_00001.parquet", true),
            (".part-20261126T010000Z-ab12cd34-s1of3_00001.parquet.tmp", true),
            ("failures-s1of3.parquet", true),
            ("part-20261126T010000Z-ab12cd34-s2of3_00001.parquet", false),
            (".part-20261126T010000Z-ab12cd34-s0of3_00001.parquet.tmp", false),
            ("part-20261126T010000Z-ab12cd34-s1of30_00001.parquet", true),
            ("part-20261125T010000Z-ab12cd34_00001.parquet", true),
            ("part-20261125T010000Z-ab12cd34-s0of2_00001.parquet", true),
        ] {
            assert_eq!(scope.file(name), mine, "{name}");
        }
        assert!(Scope::default().file("part-x-s2of3_00001.parquet"));
    }

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
        let (recovered, _) = recover(&Storage::local(out), Scope::default(), &Partitions::All).unwrap();
        assert_eq!(recovered, Recovered { temporaries: 1, superseded_calls: 0, uncommitted_files: 1 });
        assert!(out.join("utterances").join(partition).join("part-r1_00001.parquet").exists());
        assert!(!out.join("utterances").join(partition).join("part-r1_00002.parquet").exists());
        assert_eq!(
            recover(&Storage::local(out), Scope::default(), &Partitions::All).unwrap().0,
            Recovered::default(),
            "a second recovery finds nothing to do"
        );
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
        write_failures(&Storage::local(dir.path()), None, &rows).unwrap();
        assert_eq!(adopt_failures(&Storage::local(dir.path()), Scope::default()).unwrap(), rows);
    }
}
