//! Human evaluations, at the edge: CSV files QA drops in `OUT/evaluations/_drop/` (exports of
//! their evaluation forms, or `callqa evaluate`) -> [`Evaluation`]s and the `evaluations`
//! table (`OUT/evaluations/evaluations.parquet`, rewritten whole from the drop folder).
//!
//! A file has a header row. `call_id` and `passed` are required; `evaluator` and
//! `evaluated_at` (RFC 3339, `YYYY-MM-DD HH:MM[:SS]` in UTC, or a date) are optional; every
//! other column is a rule id (`zh.forbidden.not_my_business`, `scorecard.long_hold`, ...) with
//! `confirmed`, `rejected`, `not_applicable` or blank (not looked at) per call. The folder is
//! `_drop` so that Parquet readers of `OUT/evaluations` skip it (Spark, pyarrow and DuckDB
//! globs ignore names starting with `_`); CSV files left directly in `OUT/evaluations` by
//! earlier versions are moved there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, ListBuilder, StringArray, StringBuilder, TimestampMicrosecondArray};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::ReviewError;
use crate::sampling::agreement::{Evaluation, Verdict};
use crate::sinks::parquet as pq;
use crate::sinks::schema;

pub fn drop_folder(out: &Path) -> PathBuf {
    out.join("evaluations").join("_drop")
}

pub fn table_path(out: &Path) -> PathBuf {
    out.join("evaluations").join("evaluations.parquet")
}

fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros()))
}

fn parse_passed(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "pass" | "passed" => Some(true),
        "false" | "0" | "no" | "fail" | "failed" => Some(false),
        _ => None,
    }
}

/// The evaluations in one CSV file; an error names the file, the row and the column.
pub fn parse_csv(path: &Path, text: &str) -> Result<Vec<Evaluation>, ReviewError> {
    let fail = |reason: String| ReviewError::Evaluations { path: path.to_path_buf(), reason };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().map_err(|e| fail(e.to_string()))?.iter().map(String::from).collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(call_column), Some(passed_column)) = (column("call_id"), column("passed")) else {
        return Err(fail(format!("the header must name call_id and passed; it has {headers:?}")));
    };
    let (evaluator_column, at_column) = (column("evaluator"), column("evaluated_at"));
    let rule_columns: Vec<usize> = (0..headers.len())
        .filter(|i| ![Some(call_column), Some(passed_column), evaluator_column, at_column].contains(&Some(*i)))
        .collect();
    let mut evaluations = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        let record = record.map_err(|e| fail(e.to_string()))?;
        let cell = |i: usize| record.get(i).unwrap_or("");
        let call_id = cell(call_column);
        if call_id.is_empty() {
            return Err(fail(format!("row {row}: call_id is empty")));
        }
        let passed = parse_passed(cell(passed_column))
            .ok_or_else(|| fail(format!("row {row}: passed must be true or false, not {:?}", cell(passed_column))))?;
        let evaluated_at = match at_column.map(cell).filter(|t| !t.is_empty()) {
            Some(text) => Some(parse_time(text).ok_or_else(|| {
                fail(format!("row {row}: evaluated_at {text:?} is not RFC 3339, YYYY-MM-DD HH:MM[:SS] or a date"))
            })?),
            None => None,
        };
        let mut verdicts = BTreeMap::new();
        for &i in &rule_columns {
            if cell(i).is_empty() {
                continue;
            }
            let verdict = Verdict::parse(cell(i)).ok_or_else(|| {
                fail(format!(
                    "row {row}, column {}: {:?} is not confirmed, rejected or not_applicable",
                    headers[i],
                    cell(i)
                ))
            })?;
            verdicts.insert(headers[i].clone(), verdict);
        }
        evaluations.push(Evaluation {
            call_id: call_id.to_string(),
            evaluator: evaluator_column.map(cell).unwrap_or("").to_string(),
            evaluated_at,
            passed,
            verdicts,
        });
    }
    Ok(evaluations)
}

/// Every evaluation in the drop folder, in file-name order (files of earlier versions moved
/// in first).
pub fn read(out: &Path) -> Result<Vec<Evaluation>, ReviewError> {
    let drop = drop_folder(out);
    let csv_files = |dir: &Path| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "csv"));
        paths.sort();
        paths
    };
    for legacy in csv_files(&out.join("evaluations")) {
        let to = drop.join(legacy.file_name().expect("a file"));
        std::fs::create_dir_all(&drop)
            .and_then(|_| std::fs::rename(&legacy, &to))
            .map_err(|e| ReviewError::Write { path: to.clone(), reason: e.to_string() })?;
        tracing::info!("moved {} into {}", legacy.display(), drop.display());
    }
    let mut evaluations = Vec::new();
    for path in csv_files(&drop) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ReviewError::Evaluations { path: path.clone(), reason: e.to_string() })?;
        evaluations.extend(parse_csv(&path, &text)?);
    }
    Ok(evaluations)
}

/// Read the drop folder and rewrite the `evaluations` table from it (empty without files, so
/// the table always exists for queries).
pub fn sync_table(out: &Path) -> Result<Vec<Evaluation>, ReviewError> {
    let evaluations = read(out)?;
    let with = |verdict: Verdict| -> ArrayRef {
        let mut builder = ListBuilder::new(StringBuilder::new());
        for e in &evaluations {
            for (rule, _) in e.verdicts.iter().filter(|(_, v)| **v == verdict) {
                builder.values().append_value(rule);
            }
            builder.append(true);
        }
        Arc::new(builder.finish())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(evaluations.iter().map(|e| e.call_id.as_str()))),
        Arc::new(StringArray::from_iter_values(evaluations.iter().map(|e| e.evaluator.as_str()))),
        Arc::new(TimestampMicrosecondArray::from_iter(evaluations.iter().map(|e| e.evaluated_at)).with_timezone("UTC")),
        Arc::new(BooleanArray::from_iter(evaluations.iter().map(|e| Some(e.passed)))),
        with(Verdict::Confirmed),
        with(Verdict::Rejected),
        with(Verdict::NotApplicable),
    ];
    let batch = pq::batch("evaluations", schema::evaluations().schema, columns)?;
    pq::write_file(&table_path(out), &batch)?;
    Ok(evaluations)
}

/// Write one evaluation into the drop folder as its own CSV file (atomically); returns its path.
pub fn append(out: &Path, evaluation: &Evaluation) -> Result<PathBuf, ReviewError> {
    let mut header = vec!["call_id", "evaluator", "evaluated_at", "passed"];
    header.extend(evaluation.verdicts.keys().map(String::as_str));
    let at = evaluation
        .evaluated_at
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    let passed = evaluation.passed.to_string();
    let mut row = vec![evaluation.call_id.as_str(), evaluation.evaluator.as_str(), at.as_str(), passed.as_str()];
    row.extend(evaluation.verdicts.values().map(|v| match v {
        Verdict::Confirmed => "confirmed",
        Verdict::Rejected => "rejected",
        Verdict::NotApplicable => "not_applicable",
    }));
    let stamp = evaluation.evaluated_at.unwrap_or_else(|| Utc::now().timestamp_micros());
    let name = crate::sinks::audio::file_name(&evaluation.call_id).replace(".wav", "");
    let path = drop_folder(out).join(format!("callqa-evaluate-{stamp}-{name}.csv"));
    pq::write_atomic(&path, |file| {
        let mut writer = csv::Writer::from_writer(file);
        writer.write_record(&header).and_then(|_| writer.write_record(&row)).map_err(|e| e.to_string())?;
        writer.into_inner().map_err(|e| e.to_string())
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_export_parses_and_bad_cells_are_named() {
        let path = Path::new("week1.csv");
        let text = "call_id,evaluator,evaluated_at,passed,zh.forbidden.not_my_business,scorecard.long_hold\n\
                    c1,王芳,2026-10-08 14:30,false,confirmed,\n\
                    c2,王芳,2026-10-08T15:00:00+08:00,true,Rejected,not applicable\n";
        let evaluations = parse_csv(path, text).unwrap();
        assert_eq!(evaluations.len(), 2);
        assert_eq!(evaluations[0].verdicts.len(), 1, "a blank cell is no verdict");
        assert_eq!(evaluations[1].verdicts["scorecard.long_hold"], Verdict::NotApplicable);
        assert_eq!(evaluations[1].evaluated_at, Some(parse_time("2026-10-08T07:00:00Z").unwrap()));
        assert!(!evaluations[0].passed && evaluations[1].passed);
        // The old two-column form still reads.
        assert_eq!(parse_csv(path, "call_id,passed\nc1,yes\n").unwrap()[0].evaluator, "");
        for (bad, says) in [
            ("call_id,passed,r\nc1,true,maybe\n", "row 2, column r"),
            ("call_id,passed\nc1,perhaps\n", "row 2: passed"),
            ("call_id,evaluated_at,passed\nc1,yesterday,true\n", "evaluated_at"),
            ("id,passed\nc1,true\n", "must name call_id"),
        ] {
            let err = parse_csv(path, bad).unwrap_err().to_string();
            assert!(err.contains("week1.csv") && err.contains(says), "{err}");
        }
    }

    #[test]
    fn appended_evaluations_read_back_and_the_table_is_written() {
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(out.path().join("evaluations")).unwrap();
        std::fs::write(out.path().join("evaluations/old.csv"), "call_id,passed\nc0,true\n").unwrap();
        let evaluation = Evaluation {
            call_id: "c/1".into(),
            evaluator: "qa".into(),
            evaluated_at: Some(1_790_000_000_000_000),
            passed: false,
            verdicts: BTreeMap::from([("r".to_string(), Verdict::Rejected)]),
        };
        append(out.path(), &evaluation).unwrap();
        let all = sync_table(out.path()).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.contains(&evaluation));
        assert!(drop_folder(out.path()).join("old.csv").exists(), "moved out of the table's folder");
        assert!(table_path(out.path()).exists());
    }
}
