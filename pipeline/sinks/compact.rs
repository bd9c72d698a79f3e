//! Compaction: a `call_date` partition's many part files -> one file per table, sorted by
//! `call_id` (then `start_s`), superseded call versions and empty files gone.
//!
//! In: an output folder of `callqa run`. Out: the same rows, each partition of the call tables
//! (`calls`, `utterances`, `speech`, `events`) in one `part-compact-<id>_00000.parquet` per
//! table. The call tables commit together (a child file is committed by the `calls` file of
//! the same name), so a partition is compacted in all four at once, under one name: the
//! merged `calls` file commits the merged child files exactly as a run's commit does.
//!
//! What a reader sees: each table's partition folder holds either its old files or the merged
//! one, never both. The merged file is built in a staging folder
//! (`<out>/.callqa-compact/<id>/<table>/call_date=D/`) and the two folders are swapped in one
//! step (`renameat2` with `RENAME_EXCHANGE`). A query that listed the old files just before a
//! swap and opens them after finds them gone and must be run again. Where the file system
//! cannot swap folders (NFS), the merged file is renamed in and the old ones deleted: there a
//! query that lands in that moment can count a call twice; a warning says so.
//!
//! Beside other jobs: it holds the output lock shared (as shards do, so an unsharded run or a
//! rescore waits for it) and, one partition at a time, the rewrite lock, so no recovery
//! rewrites a file it is reading. Commits may land in a partition while it is compacted:
//! `calls` is listed before the child tables (a commit's child files precede its `calls`
//! file), only committed files are merged, and whatever else is in the old folder after a
//! swap moves into the new one (temporaries are written outside partition folders, see
//! [`super::parquet`]).
//!
//! A kill at any point: the plan is written before the first swap; [`finish_interrupted`]
//! (at the start of every recovery and every compaction) finishes a planned compaction and
//! removes an unplanned one's staging files. Both leave every call once in every table.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::commit::write_error;
use super::parquet::{self as pq, Partitions, SinkError};
use crate::run::lock::{self, LockError};
use crate::storage::Storage;

/// The call tables, `calls` first: listed in this order, a commit's child files are never
/// missed while its `calls` file is seen.
pub const CALL_TABLES: [&str; 4] = ["calls", "utterances", "speech", "events"];

const STAGING: &str = ".callqa-compact";

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("unknown table {0}: compact works on calls, utterances, speech and events")]
    UnknownTable(String),
}

/// Which partitions to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Partitions where one of these tables has more than one file (all call tables when empty).
    pub tables: Vec<String>,
    /// Only call dates before this one.
    pub before: NaiveDate,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Compacted {
    pub partitions: usize,
    pub files_before: usize,
    pub files_after: usize,
    pub rows: usize,
    pub superseded_calls: usize,
    /// Partitions swapped file by file, where the file system cannot swap folders.
    pub without_exchange: usize,
}

/// One table's part of a compaction plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TablePlan {
    table: String,
    /// The live partition folder, relative to the output folder.
    live: String,
    /// The staging folder, relative to the output folder.
    staging: String,
    merged: String,
    inputs: Vec<String>,
}

/// Compact the partitions of `out` that `options` picks. Idempotent: a partition already
/// compacted (one merged file per table) is left alone.
pub fn compact(out: &Storage, options: &CompactOptions) -> Result<Compacted, CompactError> {
    for table in &options.tables {
        if !CALL_TABLES.contains(&table.as_str()) {
            return Err(CompactError::UnknownTable(table.clone()));
        }
    }
    let started = chrono::Utc::now();
    let id = format!("compact-{}", crate::run::new_run_id(started, None));
    let holder = lock::Holder::this_process(&id, started);
    // Shared with shards; exclusive among compactions (the lock tag is its own).
    let _lock = lock::OutputLock::acquire_shard(out, &holder, "compact")?;
    {
        let _rewriting = lock::rewrite_lock(out)?;
        finish_interrupted(out)?;
    }
    let picked: Vec<&str> = match options.tables.is_empty() {
        true => CALL_TABLES.to_vec(),
        false => options.tables.iter().map(String::as_str).collect(),
    };
    let mut dates: BTreeSet<String> = BTreeSet::new();
    for table in CALL_TABLES {
        dates.extend(pq::table_files(out, table)?.iter().filter_map(|k| pq::partition_date(k).map(str::to_string)));
    }
    let before = options.before.format("%Y-%m-%d").to_string();
    let mut summary = Compacted::default();
    for (seq, date) in dates.iter().filter(|d| **d < before).enumerate() {
        let _rewriting = lock::rewrite_lock(out)?;
        // Only committed files: a child file whose calls file was not there when calls was
        // listed stays where it is, for its commit (or a recovery) to settle.
        let mut files = BTreeMap::new();
        for table in CALL_TABLES {
            files.insert(table, pq::table_files(out, &format!("{table}/call_date={date}"))?);
        }
        let committed: HashSet<String> = files["calls"].iter().map(|k| pq::commit_of_file(k).to_string()).collect();
        for keys in files.values_mut() {
            keys.retain(|k| committed.contains(pq::commit_of_file(k)));
        }
        let fragmented = picked
            .iter()
            .any(|t| files[*t].len() > 1 || files[*t].iter().any(|k| !pq::commit_of_file(k).starts_with("compact-")));
        if committed.is_empty() || !fragmented {
            continue;
        }
        let merged = format!("part-{}.parquet", super::commit::commit_id(&id, seq as u32));
        compact_partition(out, &id, date, &files, &merged, &mut summary)?;
    }
    if summary.without_exchange > 0 {
        warn!(
            partitions = summary.without_exchange,
            "partitions were swapped file by file (an object store, or a file system that cannot swap folders): a query at that moment may have counted calls twice"
        );
    }
    info!(?summary, "compacted");
    Ok(summary)
}

fn compact_partition(
    out: &Storage,
    id: &str,
    date: &str,
    files: &BTreeMap<&str, Vec<String>>,
    merged: &str,
    summary: &mut Compacted,
) -> Result<(), SinkError> {
    let committed: HashSet<&str> = files["calls"].iter().map(|k| pq::commit_of_file(k)).collect();
    let one_date = Partitions::Dates(BTreeSet::from([date.into()]));
    let versions: Vec<pq::CallVersion> =
        pq::call_versions(out, &one_date)?.into_iter().filter(|v| committed.contains(v.commit.as_str())).collect();
    let stale = pq::stale_by_commit(&versions);
    let partition = format!("call_date={date}");
    let mut plans = Vec::new();
    for table in CALL_TABLES {
        let inputs = &files[table];
        let mut batches = Vec::new();
        for key in inputs {
            let path = PathBuf::from(out.describe(key));
            for batch in pq::read_table_file(out, key, None)? {
                batches.push(pq::without_stale(&batch, pq::commit_of_file(key), &stale, &path)?.unwrap_or(batch));
            }
        }
        let staging = format!("{STAGING}/{id}/{table}/{partition}");
        let Some(schema) = batches.first().map(RecordBatch::schema) else {
            continue; // No file of this table to take a schema from: nothing to merge.
        };
        let whole = concat_batches(&schema, &batches)
            .and_then(|b| sorted(&b))
            .map_err(|e| SinkError::Build { table: table.into(), reason: e.to_string() })?;
        pq::write_table_file(out, &format!("{staging}/{merged}"), &whole)?;
        summary.rows += whole.num_rows();
        summary.files_before += inputs.len();
        summary.files_after += 1;
        plans.push(TablePlan {
            table: table.into(),
            live: format!("{table}/{partition}"),
            staging,
            merged: merged.into(),
            inputs: inputs.iter().map(|k| pq::file_name(k).to_string()).collect(),
        });
    }
    summary.superseded_calls += stale.values().map(HashSet::len).sum::<usize>();
    let plan_key = format!("{STAGING}/{id}/plan-{partition}.json");
    let plan = serde_json::to_vec(&plans).expect("serialisable");
    out.write(&plan_key, plan).map_err(|e| write_error(out, &plan_key, e))?;
    summary.without_exchange += usize::from(carry_out(out, &plans)?);
    out.remove(&plan_key).map_err(|e| write_error(out, &plan_key, e))?;
    summary.partitions += 1;
    clear_staging(out, id)?;
    Ok(())
}

/// Rows in `call_id` order, then `start_s` where the table has it.
fn sorted(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns: Vec<SortColumn> = ["call_id", "start_s"]
        .iter()
        .filter_map(|name| batch.column_by_name(name))
        .map(|values| SortColumn { values: values.clone(), options: None })
        .collect();
    let indices = lexsort_to_indices(&columns, None)?;
    take_record_batch(batch, &indices)
}

/// Swap each table's merged file in, then clear the old files away. Run again on the same
/// plan (after a kill) it finishes the job: a staging folder that still holds its merged file
/// has not been swapped yet. Returns whether a partition was swapped file by file.
fn carry_out(out: &Storage, plans: &[TablePlan]) -> Result<bool, SinkError> {
    let mut file_by_file = false;
    for plan in plans {
        let merged = format!("{}/{}", plan.staging, plan.merged);
        if out.exists(&merged).map_err(|e| write_error(out, &merged, e))? {
            super::test_pause();
            if !swap_folders(out, plan)? {
                file_by_file = true;
                move_file(out, &merged, &format!("{}/{}", plan.live, plan.merged))?;
            }
        }
        // The old files go wherever they are now; anything else in the old folder (a commit
        // that landed during the compaction) moves into the live one.
        for name in &plan.inputs {
            let old = format!("{}/{name}", plan.live);
            super::test_pause();
            out.remove(&old).map_err(|e| write_error(out, &old, e))?;
        }
        let inputs: HashSet<&str> = plan.inputs.iter().map(String::as_str).collect();
        for entry in out.list(&plan.staging).unwrap_or_default() {
            let name = pq::file_name(&entry.key);
            super::test_pause();
            if inputs.contains(name) || name == plan.merged {
                out.remove(&entry.key).map_err(|e| write_error(out, &entry.key, e))?;
            } else {
                move_file(out, &entry.key, &format!("{}/{name}", plan.live))?;
            }
        }
        if let Some(root) = out.local_root() {
            let _ = fs::remove_dir(root.join(&plan.staging));
            let live = root.join(&plan.live);
            fs::File::open(&live).and_then(|d| d.sync_all()).map_err(|e| write_error(out, &plan.live, e))?;
        }
    }
    Ok(file_by_file)
}

/// Swap the staging and live folders of a plan in one step; `false` where that cannot be
/// done (an object store, or a file system without `RENAME_EXCHANGE`).
fn swap_folders(out: &Storage, plan: &TablePlan) -> Result<bool, SinkError> {
    let Some(root) = out.local_root() else { return Ok(false) };
    let (staging, live) = (root.join(&plan.staging), root.join(&plan.live));
    if !live.exists() {
        fs::create_dir_all(live.parent().expect("a table folder")).map_err(|e| write_error(out, &plan.live, e))?;
        fs::rename(&staging, &live).map_err(|e| write_error(out, &plan.live, e))?;
        return Ok(true);
    }
    match exchange(&staging, &live) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => Ok(false),
        Err(e) => Err(write_error(out, &plan.live, e)),
    }
}

/// Move one file: a rename on a disk, a copy and a delete on an object store.
fn move_file(out: &Storage, from: &str, to: &str) -> Result<(), SinkError> {
    if let Some(root) = out.local_root() {
        return fs::rename(root.join(from), root.join(to)).map_err(|e| write_error(out, to, e));
    }
    let bytes = out.read(from).map_err(|e| write_error(out, from, e))?;
    out.write(to, bytes.to_vec()).map_err(|e| write_error(out, to, e))?;
    out.remove(from).map_err(|e| write_error(out, from, e))
}

/// Swap two folders in one step.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths; renameat2 reads them and nothing else.
    let status =
        unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Finish the compactions a kill interrupted, and remove what unplanned ones staged. Call under
/// the rewrite lock (or the exclusive output lock), before anything reads or rewrites tables.
pub fn finish_interrupted(out: &Storage) -> Result<(), SinkError> {
    let entries = out.list(STAGING).unwrap_or_default();
    let ids: BTreeSet<&str> = entries.iter().filter_map(|e| e.key.split('/').nth(1)).collect();
    for id in ids {
        for entry in entries.iter().filter(|e| e.key.starts_with(&format!("{STAGING}/{id}/plan-"))) {
            let read = |reason: String| SinkError::Read { path: out.describe(&entry.key).into(), reason };
            let bytes = out.read(&entry.key).map_err(|e| read(e.to_string()))?;
            let plan: Vec<TablePlan> = serde_json::from_slice(&bytes).map_err(|e| read(e.to_string()))?;
            info!(plan = %out.describe(&entry.key), "finishing an interrupted compaction");
            carry_out(out, &plan)?;
            out.remove(&entry.key).map_err(|e| write_error(out, &entry.key, e))?;
        }
        clear_staging(out, id)?;
    }
    Ok(())
}

/// Remove what compaction `id` staged.
fn clear_staging(out: &Storage, id: &str) -> Result<(), SinkError> {
    let folder = format!("{STAGING}/{id}");
    if let Some(root) = out.local_root() {
        return match fs::remove_dir_all(root.join(&folder)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(write_error(out, &folder, e)),
            _ => Ok(()),
        };
    }
    for entry in out.list(&folder).unwrap_or_default() {
        out.remove(&entry.key).map_err(|e| write_error(out, &entry.key, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    const PARTITION: &str = "call_date=2026-11-20";

    /// One commit: a calls file (`(call_id, processed_at)` per call) and an utterances file
    /// with two rows per call, their start times descending.
    fn commit(out: &Path, name: &str, run: &str, calls: &[(&str, i64)]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("call_id", DataType::Utf8, false),
            Field::new("content_sha256", DataType::Utf8, false),
            Field::new("run_id", DataType::Utf8, false),
            Field::new("processed_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        ]));
        let ids: Vec<&str> = calls.iter().map(|c| c.0).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids.clone())),
            Arc::new(StringArray::from(vec!["sha"; calls.len()])),
            Arc::new(StringArray::from(vec![run; calls.len()])),
            Arc::new(
                TimestampMicrosecondArray::from(calls.iter().map(|c| c.1).collect::<Vec<_>>()).with_timezone("UTC"),
            ),
        ];
        let file = format!("part-{name}.parquet");
        pq::write_file(&out.join("calls").join(PARTITION).join(&file), &pq::batch("calls", schema, columns).unwrap())
            .unwrap();
        write_utterances(out, &file, run, &ids);
    }

    fn write_utterances(out: &Path, file: &str, run: &str, ids: &[&str]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("call_id", DataType::Utf8, false),
            Field::new("start_s", DataType::Float64, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        let rows: Vec<(&str, f64)> = ids.iter().flat_map(|id| [(*id, 9.0), (*id, 1.0)]).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| format!("{run}:{}", r.0)).collect::<Vec<_>>())),
        ];
        let batch = pq::batch("utterances", schema, columns).unwrap();
        pq::write_file(&out.join("utterances").join(PARTITION).join(file), &batch).unwrap();
    }

    fn rows(out: &Path, table: &str) -> Vec<String> {
        pq::read_partitions(out, table, &|_| true)
            .unwrap()
            .iter()
            .flat_map(|(_, b)| {
                let ids = pq::column::<StringArray>(b, "call_id", Path::new(table)).unwrap();
                let texts = b.column_by_name("text").map(|t| t.as_any().downcast_ref::<StringArray>().unwrap());
                let starts = b.column_by_name("start_s").map(|t| t.as_any().downcast_ref::<Float64Array>().unwrap());
                (0..b.num_rows())
                    .map(|i| {
                        let text = texts.map_or(String::new(), |t| t.value(i).to_string());
                        format!("{} {} {}", ids.value(i), starts.map_or(0.0, |s| s.value(i)), text)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn one_sorted_file_per_table_superseded_versions_dropped_uncommitted_files_left() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        commit(out, "r1_00001", "r1", &[("b", 100), ("a", 100)]);
        commit(out, "r1_00002", "r1", &[("c", 100)]);
        // `a` processed again by r2 (its r1 rows are superseded); r2's second commit was
        // killed before its calls file.
        commit(out, "r2_00001", "r2", &[("a", 200)]);
        write_utterances(out, "part-r2_00002.parquet", "r2", &["d"]);
        let options = CompactOptions { tables: Vec::new(), before: NaiveDate::from_ymd_opt(2026, 11, 21).unwrap() };
        let done = compact(&Storage::local(out), &options).unwrap();
        assert_eq!((done.partitions, done.files_before, done.files_after), (1, 6, 2));
        assert_eq!(done.superseded_calls, 1);
        assert_eq!(rows(out, "calls"), ["a 0 ", "b 0 ", "c 0 "]);
        assert_eq!(
            rows(out, "utterances"),
            ["a 1 r2:a", "a 9 r2:a", "b 1 r1:b", "b 9 r1:b", "c 1 r1:c", "c 9 r1:c", "d 9 r2:d", "d 1 r2:d"],
            "sorted in the merged file; the uncommitted file (d) is left as it was, for recovery"
        );
        let utterance_files = pq::table_files(&Storage::local(out), "utterances").unwrap();
        assert_eq!(utterance_files.len(), 2);
        assert!(utterance_files.iter().any(|p| p.ends_with("part-r2_00002.parquet")));
        assert_eq!(compact(&Storage::local(out), &options).unwrap().partitions, 0, "idempotent");
        // A call processed again after compaction: its rows in the merged files are superseded.
        commit(out, "r3_00001", "r3", &[("b", 300)]);
        let (recovered, _) = super::super::commit::recover(
            &Storage::local(out),
            super::super::commit::Scope::default(),
            &Partitions::Dates(BTreeSet::from(["2026-11-20".to_string()])),
        )
        .unwrap();
        assert_eq!(recovered.superseded_calls, 1);
        assert_eq!(
            rows(out, "utterances"),
            ["a 1 r2:a", "a 9 r2:a", "c 1 r1:c", "c 9 r1:c", "b 9 r3:b", "b 1 r3:b"],
            "b's old rows left the merged file; the uncommitted d went"
        );
        let unknown = CompactOptions { tables: vec!["samples".into()], ..options };
        assert!(compact(&Storage::local(out), &unknown).unwrap_err().to_string().contains("unknown table samples"));
    }

    #[test]
    fn a_plan_cut_short_is_carried_out_by_the_next_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        commit(out, "r1_00001", "r1", &[("a", 100)]);
        commit(out, "r1_00002", "r1", &[("b", 100)]);
        let live = out.join("utterances").join(PARTITION);
        let staging = out.join(STAGING).join("compact-x").join("utterances").join(PARTITION);
        // Staged, planned, then killed before the swap, while a commit landed in the live folder.
        let merged = "part-compact-x_00000.parquet";
        fs::create_dir_all(&staging).unwrap();
        fs::copy(live.join("part-r1_00001.parquet"), staging.join(merged)).unwrap();
        let plan = vec![TablePlan {
            table: "utterances".into(),
            live: format!("utterances/{PARTITION}"),
            staging: staging.strip_prefix(out).unwrap().display().to_string(),
            merged: merged.into(),
            inputs: vec!["part-r1_00001.parquet".into()],
        }];
        fs::write(out.join(STAGING).join("compact-x").join("plan-x.json"), serde_json::to_string(&plan).unwrap())
            .unwrap();
        // Another compaction was killed while it staged, before its plan: only its staging goes.
        let unplanned = out.join(STAGING).join("compact-y").join("calls").join(PARTITION);
        fs::create_dir_all(&unplanned).unwrap();
        fs::write(unplanned.join("part-compact-y_00000.parquet"), b"half").unwrap();
        finish_interrupted(&Storage::local(out)).unwrap();
        let mut names: Vec<String> =
            fs::read_dir(&live).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, [merged, "part-r1_00002.parquet"]);
        assert_eq!(fs::read_dir(out.join(STAGING)).unwrap().count(), 0, "staging cleared");
    }
}
