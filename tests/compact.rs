//! `callqa compact` (issue 12, item 3) on an output of many small commits: pyarrow and DuckDB
//! querying all the while never see a call twice; a second compaction changes nothing; a
//! compaction killed at any point leaves every row once and is finished by the next run; a
//! shard writing into the same partitions meanwhile loses nothing. Acoustic runs (`--no-asr`):
//! the files and the commit protocol are those of runs with a model.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const TABLES: [&str; 3] = ["calls", "speech", "events"];

/// `count` calls from `seed` with a manifest spreading them over call dates `dates`
/// (call ids prefixed, so two inputs never share one).
fn input(dir: &Path, prefix: &str, count: usize, seed: u64, dates: &[&str]) -> PathBuf {
    assembled_calls(dir, count, seed);
    let mut manifest = String::from("path,call_id,started_at\n");
    for k in 0..count {
        let date = dates[k % dates.len()];
        manifest += &format!("call{k:02}.wav,{prefix}{k:02},{date}T10:{k:02}:00Z\n");
    }
    let path = dir.join("manifest.csv");
    std::fs::write(&path, manifest).unwrap();
    path
}

fn callqa(args: &[&str], out: &Path, pause_ms: u64) -> Command {
    let mut cmd = callqa_bin();
    cmd.args(args).arg("--out").arg(out).env("CALLQA_TEST_IO_PAUSE_MS", pause_ms.to_string());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn run(manifest: &Path, out: &Path, extra: &[&str], pause_ms: u64) -> Command {
    let mut args = vec!["run", "--no-asr", "--commit-every", "1", "--input", manifest.to_str().unwrap()];
    args.extend(extra);
    callqa(&args, out, pause_ms)
}

fn ok(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn compact(out: &Path, pause_ms: u64) -> Command {
    callqa(&["compact", "--before", "2026-11-10"], out, pause_ms)
}

/// Every row of the call tables, without what differs between runs, sorted: equal snapshots
/// hold the same rows the same number of times.
fn snapshot(out: &Path) -> BTreeMap<&'static str, Vec<String>> {
    TABLES
        .iter()
        .map(|table| {
            let mut rows: Vec<String> = read_table(out, table)
                .into_iter()
                .map(|mut row| {
                    for volatile in ["run_id", "processed_at"] {
                        row.remove(volatile);
                    }
                    serde_json::to_string(&row).unwrap()
                })
                .collect();
            rows.sort();
            (*table, rows)
        })
        .collect()
}

/// Rows per call in each table, as the reader script expects them.
fn counts(out: &Path) -> BTreeMap<&'static str, BTreeMap<String, usize>> {
    TABLES
        .iter()
        .map(|table| {
            let mut per_call = BTreeMap::new();
            for row in read_table(out, table) {
                *per_call.entry(row["call_id"].as_str().unwrap().to_string()).or_insert(0) += 1;
            }
            (*table, per_call)
        })
        .collect()
}

/// The table files, relative to the output folder.
fn files(out: &Path) -> BTreeSet<String> {
    TABLES
        .iter()
        .flat_map(|t| walkdir::WalkDir::new(out.join(t)).into_iter().filter_map(Result::ok))
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(out).unwrap().display().to_string())
        .collect()
}

/// 12 calls over 3 dates, one commit each: 4 part files per table and partition.
fn fragmented(dir: &Path) -> (PathBuf, PathBuf) {
    let calls = dir.join("calls");
    std::fs::create_dir(&calls).unwrap();
    let manifest = input(&calls, "a", 12, 26, &["2026-11-01", "2026-11-02", "2026-11-03"]);
    let out = dir.join("out");
    ok(&mut run(&manifest, &out, &[], 0));
    (manifest, out)
}

#[test]
fn readers_never_see_a_call_twice_and_a_second_compaction_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = fragmented(dir.path());
    let before = snapshot(&out);
    assert_eq!(before["calls"].len(), 12);
    let parts = files(&out).len();
    assert_eq!(files(&out).iter().filter(|f| f.starts_with("calls/")).count(), 12, "a commit per call");

    let expected = dir.path().join("expected.json");
    std::fs::write(&expected, serde_json::to_string(&counts(&out)).unwrap()).unwrap();
    let stop = dir.path().join("stop");
    let reader = Command::new(python())
        .arg(repo().join("tests/interop/read_during_compaction.py"))
        .args([&out, &expected, &stop])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader's imports take seconds, more where Python compiles them on every start.
    let ready = stop.with_extension("ready");
    wait_until(Duration::from_secs(60), "the reader never started", || ready.exists());
    let stdout = ok(&mut compact(&out, 25));
    std::fs::write(&stop, b"").unwrap();
    let report = reader.wait_with_output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["mismatches"], Value::Array(vec![]), "{report}");
    assert!(report["reads"].as_u64().unwrap() >= 12, "the reader queried during the compaction: {report}");
    println!("{stdout}{report}");

    assert!(stdout.contains(&format!("compacted 3 partitions: {parts} files into 9")), "{stdout}");
    assert_eq!(snapshot(&out), before, "the same rows, each once");
    let after = files(&out);
    assert_eq!(after.len(), 9, "one file per table and partition: {after:?}");
    assert!(after.iter().all(|f| f.contains("/part-compact-")), "{after:?}");
    for row in ["calls", "speech"].map(|t| read_table(&out, t)) {
        let keys: Vec<(String, String, f64)> = row
            .iter()
            .map(|r| {
                let start = r.get("start_s").and_then(Value::as_f64).unwrap_or(0.0);
                (r["call_date"].as_str().unwrap().into(), r["call_id"].as_str().unwrap().into(), start)
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "rows sorted by call_id and start_s");
    }
    assert!(staging_is_empty(&out));

    let again = ok(&mut compact(&out, 0));
    assert!(again.contains("compacted 0 partitions"), "{again}");
    assert_eq!(files(&out), after, "idempotent");
}

#[test]
fn a_killed_compaction_leaves_every_row_once_and_the_next_run_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, fresh) = fragmented(dir.path());
    let before = snapshot(&fresh);
    let mut kills = 0;
    // File operations slowed so the kills land in every phase: merging, swapping, clearing.
    for delay_ms in [100, 350, 600, 850, 1100, 1350, 1600] {
        let out = dir.path().join(format!("killed-{delay_ms}"));
        assert!(Command::new("cp").arg("-a").arg(&fresh).arg(&out).status().unwrap().success());
        let mut child = compact(&out, 30).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        kills += usize::from(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(snapshot(&out), before, "after a kill at {delay_ms} ms every row is there once");
        // A run (everything skipped) finishes an interrupted compaction in its recovery.
        let stdout = ok(&mut run(&manifest, &out, &[], 0));
        assert!(stdout.contains("0 ok, 0 failed, 12 skipped"), "{stdout}");
        assert!(staging_is_empty(&out));
        assert_eq!(snapshot(&out), before);
        ok(&mut compact(&out, 0));
        assert_eq!(files(&out).len(), 9);
        assert_eq!(snapshot(&out), before);
    }
    assert!(kills >= 5, "most compactions were killed half way ({kills} of 7)");
}

fn staging_is_empty(out: &Path) -> bool {
    std::fs::read_dir(out.join(".callqa-compact")).map_or(true, |mut entries| entries.next().is_none())
}

#[test]
fn a_shard_writing_into_the_partitions_being_compacted_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, out) = fragmented(dir.path());
    let more_dir = dir.path().join("more");
    std::fs::create_dir(&more_dir).unwrap();
    let more = input(&more_dir, "b", 6, 27, &["2026-11-02", "2026-11-04"]);
    // The same calls written without compaction: what the output must hold afterwards.
    let reference = dir.path().join("reference");
    ok(&mut run(&manifest, &reference, &[], 0));
    ok(&mut run(&more, &reference, &[], 0));

    let compaction = compact(&out, 30).spawn().unwrap();
    let shard = run(&more, &out, &["--shard", "0/1"], 30).spawn().unwrap();
    for child in [compaction, shard] {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    assert_eq!(snapshot(&out), snapshot(&reference), "every call of both inputs, once");
    ok(&mut compact(&out, 0));
    assert_eq!(snapshot(&out), snapshot(&reference));
}
