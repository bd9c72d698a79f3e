//! Parquet writing: record batches -> `<out>/<table>/call_date=YYYY-MM-DD/part-<run_id>.parquet`.
//!
//! `call_date` lives in the folder name only (Hive layout), not inside the files: readers
//! that infer partitions (pandas/pyarrow, DuckDB, Polars, Spark) would otherwise see the
//! column twice with two types. Each file is written under a dot-prefixed temporary name
//! (which Hive-style readers ignore) and renamed into place only when complete.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, BooleanArray, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
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

/// Write one file atomically: into a temporary name in the same folder, synced, renamed
/// over `path`, folder synced. A reader sees the old file or the new one, never half.
pub fn write_atomic(path: &Path, write: impl FnOnce(fs::File) -> Result<fs::File, String>) -> Result<(), SinkError> {
    let fail = |reason: String| SinkError::Write { path: path.to_path_buf(), reason };
    let dir = path.parent().expect("output files live in a folder");
    fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    let result = (|| -> Result<(), String> {
        let file = write(fs::File::create(&tmp).map_err(|e| e.to_string())?)?;
        file.sync_all().map_err(|e| e.to_string())?;
        super::test_pause();
        fs::rename(&tmp, path).map_err(|e| e.to_string())?;
        // The rename itself survives a power cut only once the folder is synced.
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// Write one Parquet file atomically.
pub fn write_file(path: &Path, batch: &RecordBatch) -> Result<(), SinkError> {
    write_atomic(path, |file| {
        let mut writer =
            ArrowWriter::try_new(file, batch.schema(), Some(writer_properties())).map_err(|e| e.to_string())?;
        writer.write(batch).map_err(|e| e.to_string())?;
        writer.into_inner().map_err(|e| e.to_string())
    })
}

/// Split a batch by its `call_date` column and write one file per date, plus an empty file
/// for each of `all_days` without rows (so every table exists for every date a run touched,
/// and a query over a day without events finds an empty table, not a missing folder).
/// Returns the paths.
pub fn write_partitioned(
    out_dir: &Path,
    table: &str,
    run_id: &str,
    batch: &RecordBatch,
    all_days: &[i32],
) -> Result<Vec<PathBuf>, SinkError> {
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
        let path = out_dir
            .join(table)
            .join(format!("call_date={}", days_to_date(day).format("%Y-%m-%d")))
            .join(format!("part-{run_id}.parquet"));
        write_file(&path, &part)?;
        written.push(path);
    }
    Ok(written)
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

/// The table's files under `<out>/<table>` (dot-prefixed temporaries excluded), sorted.
pub(crate) fn table_files(out_dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(out_dir.join(table))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            e.file_type().is_file() && !name.starts_with('.') && name.ends_with(".parquet")
        })
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<RecordBatch>, SinkError> {
    let fail = |reason: String| SinkError::Read { path: path.to_path_buf(), reason };
    let file = fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fail(e.to_string()))?
        .build()
        .map_err(|e| fail(e.to_string()))?
        .map(|batch| batch.map_err(|e| fail(e.to_string())))
        .collect()
}

/// Every batch of `<out>/<table>` whose partition folder (`key=value`) passes `keep`.
pub fn read_partitions(
    out_dir: &Path,
    table: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, RecordBatch)>, SinkError> {
    let mut found = Vec::new();
    for path in table_files(out_dir, table) {
        let partition =
            path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let value = partition.split_once('=').map_or(partition.as_str(), |(_, v)| v).to_string();
        if keep(&value) {
            found.extend(read_file(&path)?.into_iter().map(|batch| (value.clone(), batch)));
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
}

/// Every call already in `<out>/calls`, read once per run: reruns skip calls with the same
/// content, and [`drop_superseded`] finds older versions of calls processed again.
pub fn call_versions(out_dir: &Path) -> Result<Vec<CallVersion>, SinkError> {
    let mut found = Vec::new();
    for path in table_files(out_dir, "calls") {
        for batch in read_file(&path)? {
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
            }));
        }
    }
    Ok(found)
}

/// The run that wrote a table file: `part-<run_id>_<seq>.parquet` (or `part-<run_id>.parquet`
/// from versions that committed once per run).
fn run_of_file(path: &Path) -> &str {
    let stem = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.strip_prefix("part-")).unwrap_or("");
    stem.split_once('_').map_or(stem, |(run, _)| run)
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

/// Keep one version of every call. A call processed again (`--reprocess`, or its audio
/// changed) has versions from more than one run; the rows of all but its latest run
/// (`processed_at`) are removed from `tables`, each file rewritten atomically or deleted when
/// nothing is left. `versions` are the calls rows on disk, those just written included.
/// `calls` is cleaned last, so a run stopped half way leaves the evidence for the next run to
/// finish the job. Returns how many stale versions went.
pub fn drop_superseded(out_dir: &Path, tables: &[&str], versions: &[CallVersion]) -> Result<usize, SinkError> {
    let latest = latest_versions(versions);
    let mut stale: HashMap<String, HashSet<String>> = HashMap::new();
    for v in versions {
        if latest[v.call_id.as_str()].run_id != v.run_id {
            stale.entry(v.run_id.clone()).or_default().insert(v.call_id.clone());
        }
    }
    let count = stale.values().map(HashSet::len).sum();
    let mut ordered: Vec<&str> = tables.iter().copied().filter(|t| *t != "calls").collect();
    if tables.contains(&"calls") {
        ordered.push("calls");
    }
    for table in ordered {
        for path in table_files(out_dir, table) {
            let run = run_of_file(&path);
            let Some(ids) = stale.get(run) else {
                continue;
            };
            let batches = read_file(&path)?;
            let Some(schema) = batches.first().map(RecordBatch::schema) else {
                continue;
            };
            let whole = arrow::compute::concat_batches(&schema, &batches)
                .map_err(|e| SinkError::Read { path: path.clone(), reason: e.to_string() })?;
            let keep: BooleanArray = column::<StringArray>(&whole, "call_id", &path)?
                .iter()
                .map(|id| Some(!ids.contains(id.unwrap_or(""))))
                .collect();
            if keep.true_count() == keep.len() {
                continue;
            }
            if keep.true_count() == 0 {
                super::test_pause();
                fs::remove_file(&path).map_err(|e| SinkError::Write { path: path.clone(), reason: e.to_string() })?;
            } else {
                let kept = filter_record_batch(&whole, &keep)
                    .map_err(|e| SinkError::Write { path: path.clone(), reason: e.to_string() })?;
                write_file(&path, &kept)?;
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
        let files = write_partitioned(dir.path(), "t", "r1", &b, &[d1 + 5]).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files[2].ends_with("t/call_date=2026-11-25/part-r1.parquet"), "an empty file for a day without rows");
        assert!(files[0].ends_with("t/call_date=2026-11-20/part-r1.parquet"));
        assert!(files[1].ends_with("t/call_date=2026-11-21/part-r1.parquet"));
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&files[0]).unwrap())
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
        let err = write_partitioned(dir.path(), "t", "r", &b, &[]).unwrap_err().to_string();
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
        call_versions(dir).unwrap().len()
    }

    #[test]
    fn only_the_latest_version_of_a_call_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), "r1", &[("a", 100), ("b", 100)]);
        write_run(dir.path(), "r2", &[("a", 200)]);
        write_run(dir.path(), "r3", &[("b", 300)]);
        assert_eq!(
            drop_superseded(dir.path(), &["calls", "utterances"], &call_versions(dir.path()).unwrap()).unwrap(),
            2
        );
        assert_eq!(texts(dir.path()), ["r2:a", "r2:a", "r3:b", "r3:b"]);
        // r1's files held only stale rows and are gone; nothing is left to do a second time.
        assert!(!dir.path().join("calls/call_date=2026-11-20/part-r1.parquet").exists());
        assert!(!dir.path().join("utterances/call_date=2026-11-20/part-r1.parquet").exists());
        assert_eq!(call_rows(dir.path()), 2);
        assert_eq!(
            drop_superseded(dir.path(), &["calls", "utterances"], &call_versions(dir.path()).unwrap()).unwrap(),
            0
        );
    }

    #[test]
    fn an_interrupted_cleanup_is_finished_by_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), "r1", &[("a", 100), ("b", 100)]);
        write_run(dir.path(), "r2", &[("a", 200)]);
        // As if a run stopped after cleaning utterances but before calls.
        drop_superseded(dir.path(), &["utterances"], &call_versions(dir.path()).unwrap()).unwrap();
        assert_eq!(texts(dir.path()), ["r1:b", "r1:b", "r2:a", "r2:a"]);
        assert_eq!(call_rows(dir.path()), 3);
        assert_eq!(
            drop_superseded(dir.path(), &["calls", "utterances"], &call_versions(dir.path()).unwrap()).unwrap(),
            1
        );
        assert_eq!(call_rows(dir.path()), 2);
        assert_eq!(texts(dir.path()), ["r1:b", "r1:b", "r2:a", "r2:a"]);
    }
}
