//! Parquet writing: record batches -> `<out>/<table>/call_date=YYYY-MM-DD/part-<run_id>.parquet`.
//!
//! `call_date` lives in the folder name only (Hive layout), not inside the files: readers
//! that infer partitions (pandas/pyarrow, DuckDB, Polars, Spark) would otherwise see the
//! column twice with two types. Files go to a [`Storage`]: on a disk each is written under a
//! dot-prefixed temporary name (which Hive-style readers ignore) and renamed into place only
//! when complete; on an object store each is one PUT, which lands whole.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, BooleanArray, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;

use crate::storage::{self, Storage};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("building table {table}: {reason}")]
    Build { table: String, reason: String },
}

fn days_to_date(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163).expect("valid Date32")
}

pub fn date_to_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

use chrono::Datelike;

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level")))
        .set_created_by(format!("callqa {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Write one local file atomically: into a temporary name (see
/// [`storage::temporary_path`]), synced, renamed over `path`, folders synced. A reader sees
/// the old file or the new one, never half.
pub fn write_atomic(path: &Path, write: impl FnOnce(fs::File) -> Result<fs::File, String>) -> Result<(), SinkError> {
    storage::write_local_with(path, |file| write(file.try_clone()?).map(|_| ()).map_err(std::io::Error::other))
        .map_err(|e| SinkError::Write { path: path.to_path_buf(), reason: e.to_string() })
}

/// A batch as the bytes of one Parquet file.
fn encode(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut writer =
        ArrowWriter::try_new(Vec::new(), batch.schema(), Some(writer_properties())).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

/// Write one local Parquet file atomically.
pub fn write_file(path: &Path, batch: &RecordBatch) -> Result<(), SinkError> {
    let fail = |reason: String| SinkError::Write { path: path.to_path_buf(), reason };
    let bytes = encode(batch).map_err(fail)?;
    storage::write_local_with(path, |file| std::io::Write::write_all(file, &bytes)).map_err(|e| fail(e.to_string()))
}

/// Write one Parquet file to `key` of `out`, whole or not at all.
pub fn write_table_file(out: &Storage, key: &str, batch: &RecordBatch) -> Result<(), SinkError> {
    let fail = |reason: String| SinkError::Write { path: out.describe(key).into(), reason };
    out.write(key, encode(batch).map_err(fail)?).map_err(|e| fail(e.to_string()))
}

/// Split a batch by its `call_date` column and write one file per date, plus an empty file
/// for each of `all_days` without rows (so every table exists for every date a run touched,
/// and a query over a day without events finds an empty table, not a missing folder).
/// Returns the paths.
pub fn write_partitioned(
    out: &Storage,
    table: &str,
    run_id: &str,
    batch: &RecordBatch,
    all_days: &[i32],
) -> Result<Vec<String>, SinkError> {
    let build = |reason: String| SinkError::Build { table: table.into(), reason };
    let dates = batch
        .column_by_name("call_date")
        .and_then(|c| c.as_any().downcast_ref::<Date32Array>())
        .ok_or_else(|| build("no Date32 call_date column".into()))?;
    let mut by_day: BTreeMap<i32, Vec<bool>> = BTreeMap::new();
    for day in dates.values().iter().chain(all_days) {
        by_day.entry(*day).or_insert_with(|| vec![false; dates.len()]);
    }
    for (row, day) in dates.values().iter().enumerate() {
        by_day.get_mut(day).unwrap()[row] = true;
    }
    let mut written = Vec::new();
    for (day, mask) in by_day {
        let part =
            without_column(filter_record_batch(batch, &mask.into()).map_err(|e| build(e.to_string()))?, "call_date");
        let key =
            partition_key(table, &days_to_date(day).format("%Y-%m-%d").to_string(), &format!("part-{run_id}.parquet"));
        write_table_file(out, &key, &part)?;
        written.push(key);
    }
    Ok(written)
}

/// `<table>/call_date=<date>/<file>`.
pub fn partition_key(table: &str, date: &str, file: &str) -> String {
    format!("{table}/call_date={date}/{file}")
}

/// The batch without a column (a partition key, which lives in the folder name).
pub fn without_column(mut batch: RecordBatch, name: &str) -> RecordBatch {
    if let Ok(index) = batch.schema().index_of(name) {
        batch.remove_column(index);
    }
    batch
}

/// Make a batch, turning arrow's shape errors into a table-named error.
pub fn batch(table: &str, schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, SinkError> {
    RecordBatch::try_new(schema, columns).map_err(|e| SinkError::Build { table: table.into(), reason: e.to_string() })
}

/// The table's files under `<out>/<table>` (dot-prefixed temporaries excluded), as keys, sorted.
pub fn table_files(out: &Storage, table: &str) -> Result<Vec<String>, SinkError> {
    let entries = out.list(table).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(Vec::new()),
        _ => Err(SinkError::Read { path: out.describe(table).into(), reason: e.to_string() }),
    })?;
    Ok(entries
        .into_iter()
        .map(|e| e.key)
        .filter(|key| {
            let name = file_name(key);
            !name.starts_with('.') && name.ends_with(".parquet")
        })
        .collect())
}

/// The last part of a key.
pub fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// The folder part of a key (its partition, for a table file).
pub fn folder(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(folder, _)| folder)
}

fn decode(bytes: bytes::Bytes, names: Option<&[&str]>, path: &str) -> Result<Vec<RecordBatch>, SinkError> {
    let fail = |reason: String| SinkError::Read { path: path.into(), reason };
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| fail(e.to_string()))?;
    let builder = match names {
        None => builder,
        Some(names) => {
            // Only what the caller needs is decoded: a calls file has over sixty columns.
            let schema = builder.parquet_schema();
            let indices = (0..schema.num_columns()).filter(|&i| names.contains(&schema.column(i).name()));
            let mask = parquet::arrow::ProjectionMask::roots(schema, indices.collect::<Vec<_>>());
            builder.with_projection(mask)
        }
    };
    builder.build().map_err(|e| fail(e.to_string()))?.map(|batch| batch.map_err(|e| fail(e.to_string()))).collect()
}

/// Every batch of one local file.
pub(crate) fn read_file(path: &Path) -> Result<Vec<RecordBatch>, SinkError> {
    let bytes = fs::read(path).map_err(|e| SinkError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    decode(bytes.into(), None, &path.display().to_string())
}

/// Every batch of `key`, or only the columns `names` lists.
pub(crate) fn read_table_file(out: &Storage, key: &str, names: Option<&[&str]>) -> Result<Vec<RecordBatch>, SinkError> {
    let bytes = out.read(key).map_err(|e| SinkError::Read { path: out.describe(key).into(), reason: e.to_string() })?;
    decode(bytes, names, &out.describe(key))
}

/// Every batch of `<out>/<table>` whose partition folder (`key=value`) passes `keep`.
pub fn read_partitions(
    out_dir: &Path,
    table: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, RecordBatch)>, SinkError> {
    let out = Storage::local(out_dir);
    let mut found = Vec::new();
    for key in table_files(&out, table)? {
        let partition = file_name(folder(&key));
        let value = partition.split_once('=').map_or(partition, |(_, v)| v).to_string();
        if keep(&value) {
            found.extend(read_table_file(&out, &key, None)?.into_iter().map(|batch| (value.clone(), batch)));
        }
    }
    Ok(found)
}

pub(crate) fn column<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    path: &Path,
) -> Result<&'a T, SinkError> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| SinkError::Read {
        path: path.to_path_buf(),
        reason: format!("no {name} column of the expected type"),
    })
}

/// One row of `<out>/calls`, as far as re-runs care.
#[derive(Debug, Clone, PartialEq)]
pub struct CallVersion {
    pub call_id: String,
    pub content_sha256: String,
    pub run_id: String,
    /// `processed_at`, microseconds since the epoch.
    pub processed_at: i64,
    /// The Whisper model that transcribed it; `None` when transcription did not run.
    pub model: Option<String>,
    /// The commit that holds this version's rows: the stem of its files in every table
    /// (`<run_id>_<seq>`, or `compact-...` once `callqa compact` merged it).
    pub commit: String,
}

/// Which `call_date` partitions a step reads: all of them, or the dates a run's input touches
/// (so a run's start-up costs what its input costs, not what the history holds).
#[derive(Debug, Clone, PartialEq)]
pub enum Partitions {
    All,
    Dates(BTreeSet<String>),
}

impl Partitions {
    /// Whether a table file lies in one of these partitions.
    pub fn holds(&self, key: &str) -> bool {
        match self {
            Partitions::All => true,
            Partitions::Dates(dates) => partition_date(key).is_some_and(|d| dates.contains(d)),
        }
    }

    pub fn add(&mut self, date: &str) {
        if let Partitions::Dates(dates) = self {
            dates.insert(date.to_string());
        }
    }
}

/// The `call_date` of a table file, from its folder name.
pub fn partition_date(key: &str) -> Option<&str> {
    file_name(folder(key)).strip_prefix("call_date=")
}

/// The calls in `<out>/calls` within `partitions`: reruns skip calls with the same content,
/// and [`drop_superseded`] finds older versions of calls processed again.
pub fn call_versions(out: &Storage, partitions: &Partitions) -> Result<Vec<CallVersion>, SinkError> {
    let mut found = Vec::new();
    let wanted = ["call_id", "content_sha256", "run_id", "processed_at", "model"];
    for key in table_files(out, "calls")?.into_iter().filter(|k| partitions.holds(k)) {
        let commit = commit_of_file(&key).to_string();
        let path = PathBuf::from(out.describe(&key));
        for batch in read_table_file(out, &key, Some(&wanted))? {
            let ids = column::<StringArray>(&batch, "call_id", &path)?;
            let hashes = column::<StringArray>(&batch, "content_sha256", &path)?;
            let runs = column::<StringArray>(&batch, "run_id", &path)?;
            let times = column::<TimestampMicrosecondArray>(&batch, "processed_at", &path)?;
            let models = batch.column_by_name("model").and_then(|c| c.as_any().downcast_ref::<StringArray>());
            found.extend((0..batch.num_rows()).map(|i| CallVersion {
                call_id: ids.value(i).to_string(),
                content_sha256: hashes.value(i).to_string(),
                run_id: runs.value(i).to_string(),
                processed_at: times.value(i),
                model: models.filter(|m| !m.is_null(i)).map(|m| m.value(i).to_string()),
                commit: commit.clone(),
            }));
        }
    }
    Ok(found)
}

/// The commit that wrote a table file: its stem after `part-` (`<run_id>_<seq>`, a
/// compaction's `compact-<id>_00000`, or `<run_id>` from versions that committed once per run).
pub fn commit_of_file(key: &str) -> &str {
    let stem = file_name(key).strip_suffix(".parquet").unwrap_or(file_name(key));
    stem.strip_prefix("part-").unwrap_or(stem)
}

/// The version of every call that stays: its latest (`processed_at`, then run id).
pub fn latest_versions(versions: &[CallVersion]) -> HashMap<&str, &CallVersion> {
    let mut latest: HashMap<&str, &CallVersion> = HashMap::new();
    for v in versions {
        let entry = latest.entry(&v.call_id).or_insert(v);
        if (v.processed_at, &v.run_id) > (entry.processed_at, &entry.run_id) {
            *entry = v;
        }
    }
    latest
}

/// The rows of a batch read from `path` (a file of `commit`) that hold no superseded version:
/// `stale` maps a commit to the calls whose rows in it are old. `None` when all stay.
pub(crate) fn without_stale(
    batch: &RecordBatch,
    commit: &str,
    stale: &HashMap<String, HashSet<String>>,
    path: &Path,
) -> Result<Option<RecordBatch>, SinkError> {
    let Some(ids) = stale.get(commit) else {
        return Ok(None);
    };
    let keep: BooleanArray =
        column::<StringArray>(batch, "call_id", path)?.iter().map(|id| Some(!ids.contains(id.unwrap_or("")))).collect();
    if keep.true_count() == keep.len() {
        return Ok(None);
    }
    filter_record_batch(batch, &keep)
        .map(Some)
        .map_err(|e| SinkError::Read { path: path.into(), reason: e.to_string() })
}

/// Every commit's calls whose rows there are not their latest version.
pub(crate) fn stale_by_commit(versions: &[CallVersion]) -> HashMap<String, HashSet<String>> {
    let latest = latest_versions(versions);
    let mut stale: HashMap<String, HashSet<String>> = HashMap::new();
    for v in versions {
        if latest[v.call_id.as_str()].commit != v.commit {
            stale.entry(v.commit.clone()).or_default().insert(v.call_id.clone());
        }
    }
    stale
}

/// Keep one version of every call. A call processed again (`--reprocess`, or its audio
/// changed) has versions in more than one commit; the rows of all but its latest
/// (`processed_at`) are removed from `tables`, each file rewritten atomically or deleted when
/// nothing is left. `versions` are the calls rows on disk in `partitions`, those just written
/// included. `calls` is cleaned last, so a run stopped half way leaves the evidence for the
/// next run to finish the job. Returns how many stale versions went.
pub fn drop_superseded(
    out: &Storage,
    tables: &[&str],
    versions: &[CallVersion],
    partitions: &Partitions,
) -> Result<usize, SinkError> {
    let stale = stale_by_commit(versions);
    let count = stale.values().map(HashSet::len).sum();
    let mut ordered: Vec<&str> = tables.iter().copied().filter(|t| *t != "calls").collect();
    if tables.contains(&"calls") {
        ordered.push("calls");
    }
    for table in ordered {
        for key in table_files(out, table)?.into_iter().filter(|k| partitions.holds(k)) {
            let commit = commit_of_file(&key);
            if !stale.contains_key(commit) {
                continue;
            }
            let path = PathBuf::from(out.describe(&key));
            let batches = read_table_file(out, &key, None)?;
            let Some(schema) = batches.first().map(RecordBatch::schema) else {
                continue;
            };
            let whole = arrow::compute::concat_batches(&schema, &batches)
                .map_err(|e| SinkError::Read { path: path.clone(), reason: e.to_string() })?;
            let Some(kept) = without_stale(&whole, commit, &stale, &path)? else {
                continue;
            };
            if kept.num_rows() == 0 {
                super::test_pause();
                out.remove(&key).map_err(|e| SinkError::Write { path, reason: e.to_string() })?;
            } else {
                write_table_file(out, &key, &kept)?;
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, RecordBatchReader};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn batches_split_by_date_into_hive_folders_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("call_date", DataType::Date32, false),
            Field::new("n", DataType::Int32, false),
        ]));
        let d1 = date_to_days(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
        let d2 = d1 + 1;
        let b = batch(
            "t",
            schema,
            vec![Arc::new(Date32Array::from(vec![d1, d2, d1])), Arc::new(Int32Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let files = write_partitioned(&Storage::local(dir.path()), "t", "r1", &b, &[d1 + 5]).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files[2].ends_with("t/call_date=2026-11-25/part-r1.parquet"), "an empty file for a day without rows");
        assert!(files[0].ends_with("t/call_date=2026-11-20/part-r1.parquet"));
        assert!(files[1].ends_with("t/call_date=2026-11-21/part-r1.parquet"));
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            fs::File::open(dir.path().join(&files[0])).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        // call_date is in the path only.
        assert_eq!(reader.schema().fields().len(), 1);
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
        // No temporary files left.
        let leftovers = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn unwritable_destinations_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), b"a file where a folder should be").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("call_date", DataType::Date32, false)]));
        let b = batch("t", schema, vec![Arc::new(Date32Array::from(vec![0]))]).unwrap();
        let err = write_partitioned(&Storage::local(dir.path()), "t", "r", &b, &[]).unwrap_err().to_string();
        assert!(err.contains("call_date=1970-01-01"), "{err}");
    }

    /// Calls and utterances files of one run: `(call_id, processed_at)` per call, two utterances each.
    fn write_run(dir: &Path, run: &str, calls: &[(&str, i64)]) {
        let calls_schema = Arc::new(Schema::new(vec![
            Field::new("call_id", DataType::Utf8, false),
            Field::new("content_sha256", DataType::Utf8, false),
            Field::new("run_id", DataType::Utf8, false),
            Field::new(
                "processed_at",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
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
        write_file(
            &dir.join(format!("calls/call_date=2026-11-20/part-{run}.parquet")),
            &batch("calls", calls_schema, columns).unwrap(),
        )
        .unwrap();
        let utterances_schema = Arc::new(Schema::new(vec![
            Field::new("call_id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        let ids: Vec<&str> = ids.iter().flat_map(|id| [*id, *id]).collect();
        let texts: Vec<String> = ids.iter().map(|id| format!("{run}:{id}")).collect();
        let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(ids)), Arc::new(StringArray::from(texts))];
        let b = batch("utterances", utterances_schema, columns).unwrap();
        write_file(&dir.join(format!("utterances/call_date=2026-11-20/part-{run}.parquet")), &b).unwrap();
    }

    fn texts(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = read_partitions(dir, "utterances", &|_| true)
            .unwrap()
            .iter()
            .flat_map(|(_, b)| {
                column::<StringArray>(b, "text", Path::new("t"))
                    .unwrap()
                    .iter()
                    .map(|t| t.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    fn call_rows(dir: &Path) -> usize {
        call_versions(&Storage::local(dir), &Partitions::All).unwrap().len()
    }

    #[test]
    fn only_the_latest_version_of_a_call_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), "r1", &[("a", 100), ("b", 100)]);
        write_run(dir.path(), "r2", &[("a", 200)]);
        write_run(dir.path(), "r3", &[("b", 300)]);
        assert_eq!(
            drop_superseded(
                &Storage::local(dir.path()),
                &["calls", "utterances"],
                &call_versions(&Storage::local(dir.path()), &Partitions::All).unwrap(),
                &Partitions::All
            )
            .unwrap(),
            2
        );
        assert_eq!(texts(dir.path()), ["r2:a", "r2:a", "r3:b", "r3:b"]);
        // r1's files held only stale rows and are gone; nothing is left to do a second time.
        assert!(!dir.path().join("calls/call_date=2026-11-20/part-r1.parquet").exists());
        assert!(!dir.path().join("utterances/call_date=2026-11-20/part-r1.parquet").exists());
        assert_eq!(call_rows(dir.path()), 2);
        assert_eq!(
            drop_superseded(
                &Storage::local(dir.path()),
                &["calls", "utterances"],
                &call_versions(&Storage::local(dir.path()), &Partitions::All).unwrap(),
                &Partitions::All
            )
            .unwrap(),
            0
        );
    }

    #[test]
    fn an_interrupted_cleanup_is_finished_by_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), "r1", &[("a", 100), ("b", 100)]);
        write_run(dir.path(), "r2", &[("a", 200)]);
        // As if a run stopped after cleaning utterances but before calls.
        drop_superseded(
            &Storage::local(dir.path()),
            &["utterances"],
            &call_versions(&Storage::local(dir.path()), &Partitions::All).unwrap(),
            &Partitions::All,
        )
        .unwrap();
        assert_eq!(texts(dir.path()), ["r1:b", "r1:b", "r2:a", "r2:a"]);
        assert_eq!(call_rows(dir.path()), 3);
        assert_eq!(
            drop_superseded(
                &Storage::local(dir.path()),
                &["calls", "utterances"],
                &call_versions(&Storage::local(dir.path()), &Partitions::All).unwrap(),
                &Partitions::All
            )
            .unwrap(),
            1
        );
        assert_eq!(call_rows(dir.path()), 2);
        assert_eq!(texts(dir.path()), ["r1:b", "r1:b", "r2:a", "r2:a"]);
    }
}
