//! `callqa rescore` (issue 14): stored transcripts scored again under a new config give the
//! same calls and events as a fresh run with that config, only in the dates asked for, once
//! per call even when killed half way. Tables are compared as DuckDB reads them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Six calls over two call dates: the English fixtures, each on 2026-11-05 and 2026-11-20.
fn input(dir: &Path) -> PathBuf {
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    let mut manifest = String::from("path,call_id,started_at\n");
    for name in ["en_support_pcm16", "en_support_mulaw", "en_support_mono"] {
        std::fs::copy(repo().join(format!("fixtures/calls/{name}.wav")), audio.join(format!("{name}.wav"))).unwrap();
        for day in ["05", "20"] {
            manifest.push_str(&format!("audio/{name}.wav,{name}-{day},2026-11-{day}T10:00:00Z\n"));
        }
    }
    let path = dir.join("manifest.csv");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// Fixed thread counts, so that two runs transcribe alike.
const BASE: &str = "[asr]\nadapt_threads = false\nthreads = 2\n";

/// New rules and thresholds: a phrase rule that fires, dead air from 3 s, a stricter scorecard.
const NEW: &str = include_str!("../fixtures/rescore/new.toml");

fn callqa(args: &[&str], paths: &[&Path]) -> std::process::Output {
    let mut command = callqa_bin();
    command.args(args);
    for p in paths {
        command.arg(p);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn run(manifest: &Path, out: &Path, config: &Path) {
    let mut command = callqa_bin();
    command.arg("run").arg("--input").arg(manifest).arg("--out").arg(out).arg("--config").arg(config);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// calls (without provenance) and events as DuckDB reads them, in a fixed order.
fn snapshot(out: &Path) -> (Vec<Value>, Vec<Value>) {
    let script = r#"
import duckdb, json, sys
out = sys.argv[1]
def rows(sql):
    cur = duckdb.sql(sql)
    names = cur.columns
    return [dict(zip(names, [str(v) if v is not None else None for v in r])) for r in cur.fetchall()]
calls = rows(f"select * exclude (run_id, processed_at, pipeline_version) replace (cast(started_at as varchar) as started_at) from read_parquet('{out}/calls/*/*.parquet', hive_partitioning = true) order by call_id")
events = rows(f"select * from read_parquet('{out}/events/*/*.parquet', hive_partitioning = true) order by call_id, start_s, kind, rule_id, detail")
print(json.dumps([calls, events]))
"#;
    let output = Command::new(python()).arg("-c").arg(script).arg(out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let parsed: (Vec<Value>, Vec<Value>) = serde_json::from_slice(&output.stdout).unwrap();
    parsed
}

/// Every call once in `calls`, and its utterances and speech rows once (as many as before).
fn each_call_once(out: &Path, utterances: usize, speech: usize) {
    let mut ids: Vec<String> =
        read_table(out, "calls").iter().map(|r| r["call_id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((ids.len(), read_table(out, "calls").len()), (6, 6), "a call missing or twice in calls");
    assert_eq!(read_table(out, "utterances").len(), utterances);
    assert_eq!(read_table(out, "speech").len(), speech);
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).into_iter().filter_map(Result::ok) {
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn rescoring_equals_a_fresh_run_only_in_range_and_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = input(dir.path());
    let (base, new) = (dir.path().join("base.toml"), dir.path().join("new.toml"));
    std::fs::write(&base, BASE).unwrap();
    std::fs::write(&new, format!("{BASE}{NEW}")).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&manifest, &a, &base);
    run(&manifest, &b, &new);
    let (before_calls, before_events) = snapshot(&a);
    let (fresh_calls, fresh_events) = snapshot(&b);
    assert_ne!(before_calls, fresh_calls, "the new config must change scores for this test to mean anything");
    assert!(fresh_events.iter().any(|e| e["rule_id"] == "en.test.account"));
    let utterances_before = read_table(&a, "utterances").len();
    let speech_before = read_table(&a, "speech").len();

    // A killed rescore, then a whole one: the same tables as the fresh run, each call once.
    let killed = dir.path().join("killed");
    copy_dir(&a, &killed);
    let mut child = callqa_bin()
        .args(["rescore", "--month", "2026-11", "--out"])
        .arg(&killed)
        .arg("--config")
        .arg(&new)
        .env("CALLQA_TEST_IO_PAUSE_MS", "300")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let still_running = child.try_wait().unwrap().is_none();
    if cfg!(feature = "test-hooks") {
        assert!(still_running, "the kill must land inside the rescore");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    callqa(&["rescore", "--month", "2026-11", "--out"], &[&killed, Path::new("--config"), &new]);
    assert_eq!(snapshot(&killed), (fresh_calls.clone(), fresh_events.clone()));
    each_call_once(&killed, utterances_before, speech_before);

    // Whole month: identical to the fresh run; transcripts and speech untouched; idempotent.
    callqa(&["rescore", "--month", "2026-11", "--out"], &[&a, Path::new("--config"), &new]);
    assert_eq!(snapshot(&a), (fresh_calls.clone(), fresh_events.clone()));
    each_call_once(&a, utterances_before, speech_before);
    callqa(&["rescore", "--month", "2026-11", "--out"], &[&a, Path::new("--config"), &new]);
    assert_eq!(snapshot(&a), (fresh_calls.clone(), fresh_events.clone()));

    // Back to the old config on one date only: that date's calls as before, the other's new.
    callqa(&["rescore", "--from", "2026-11-20", "--to", "2026-11-20", "--out"], &[&a, Path::new("--config"), &base]);
    let (calls, events) = snapshot(&a);
    let on = |rows: &[Value], day: &str| -> Vec<Value> {
        rows.iter().filter(|r| r["call_id"].as_str().unwrap().ends_with(day)).cloned().collect()
    };
    assert_eq!(on(&calls, "-20"), on(&before_calls, "-20"));
    assert_eq!(on(&events, "-20"), on(&before_events, "-20"));
    assert_eq!(on(&calls, "-05"), on(&fresh_calls, "-05"));
    assert_eq!(on(&events, "-05"), on(&fresh_events, "-05"));

    // Tables from before rescoring existed say what to do.
    std::fs::remove_dir_all(a.join("speech")).unwrap();
    let output = callqa_bin()
        .args(["rescore", "--month", "2026-11", "--out"])
        .arg(&a)
        .arg("--config")
        .arg(&new)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("speech") && stderr.contains("--reprocess"), "{stderr}");
}
