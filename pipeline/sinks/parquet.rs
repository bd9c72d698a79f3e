//! Parquet writing: record batches -> `<out>/<table>/call_date=YYYY-MM-DD/part-<run_id>.parquet`.
//!
//! `call_date` lives in the folder name only (Hive layout), not inside the files: readers
//! that infer partitions (pandas/pyarrow, DuckDB, Polars, Spark) would otherwise see the
//! column twice with two types. Each file is written under a dot-prefixed temporary name
//! (which Hive-style readers ignore) and renamed into place only when complete.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, Date32Array, RecordBatch, StringArray};
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

/// Write one file atomically.
pub fn write_file(path: &Path, batch: &RecordBatch) -> Result<(), SinkError> {
    let fail = |reason: String| SinkError::Write { path: path.to_path_buf(), reason };
    let dir = path.parent().expect("table files live in a folder");
    fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    let result = (|| -> Result<(), String> {
        let file = fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let mut writer =
            ArrowWriter::try_new(file, batch.schema(), Some(writer_properties())).map_err(|e| e.to_string())?;
        writer.write(batch).map_err(|e| e.to_string())?;
        let file = writer.into_inner().map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        fs::rename(&tmp, path).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(fail)
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

/// Every batch of `<out>/<table>` whose partition folder (`key=value`) passes `keep`.
pub fn read_partitions(
    out_dir: &Path,
    table: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, RecordBatch)>, SinkError> {
    let root = out_dir.join(table);
    let mut found = Vec::new();
    if !root.exists() {
        return Ok(found);
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            e.file_type().is_file() && !name.starts_with('.') && name.ends_with(".parquet")
        })
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for path in files {
        let partition =
            path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let value = partition.split_once('=').map_or(partition.as_str(), |(_, v)| v).to_string();
        if !keep(&value) {
            continue;
        }
        let fail = |reason: String| SinkError::Read { path: path.clone(), reason };
        let file = fs::File::open(&path).map_err(|e| fail(e.to_string()))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| fail(e.to_string()))?
            .build()
            .map_err(|e| fail(e.to_string()))?;
        for batch in reader {
            found.push((value.clone(), batch.map_err(|e| fail(e.to_string()))?));
        }
    }
    Ok(found)
}

/// `(call_id, content_sha256)` of every call already in `<out>/calls`, so reruns can skip them.
pub fn existing_calls(out_dir: &Path) -> Result<Vec<(String, String)>, SinkError> {
    let root = out_dir.join("calls");
    let mut found = Vec::new();
    if !root.exists() {
        return Ok(found);
    }
    for entry in walkdir::WalkDir::new(&root).into_iter().filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file() || name.starts_with('.') || !name.ends_with(".parquet") {
            continue;
        }
        let fail = |reason: String| SinkError::Read { path: path.to_path_buf(), reason };
        let file = fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| fail(e.to_string()))?
            .build()
            .map_err(|e| fail(e.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|e| fail(e.to_string()))?;
            let strings = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                    .ok_or_else(|| fail(format!("no {name} column")))
            };
            let (ids, hashes) = (strings("call_id")?, strings("content_sha256")?);
            found.extend((0..ids.len()).map(|i| (ids.value(i).to_string(), hashes.value(i).to_string())));
        }
    }
    Ok(found)
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
}
