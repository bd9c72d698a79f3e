//! Shards on one output folder (issue 12, item 1): three `callqa run` processes started side by
//! side with the variables Kubernetes Indexed Jobs and Slurm job arrays set must together
//! write what one process writes, every call exactly once; a shard killed half way and run
//! again alone must still leave every call once. Acoustic runs (`--no-asr`): the commit
//! protocol is the same with the model, and these run in seconds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};

use common::*;
use serde_json::Value;

const CALLS: usize = 15;

/// 15 two-channel calls assembled from real recordings (seed 22), and one that is no WAV.
fn input() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assembled_calls(dir.path(), CALLS, 22);
    std::fs::write(dir.path().join("broken.wav"), b"RIFF\0\0\0\0WAVEnot a wav at all").unwrap();
    dir
}

fn run(input: &Path, out: &Path, env: &[(&str, String)], pause_ms: u64) -> Child {
    let mut cmd = callqa_bin();
    cmd.args(["run", "--no-asr", "--commit-every", "1", "--input"]).arg(input).arg("--out").arg(out);
    cmd.env("CALLQA_TEST_IO_PAUSE_MS", pause_ms.to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap()
}

fn finish(child: Child) {
    let output = child.wait_with_output().unwrap();
    // 1: some call failed (the broken file, in the shard that owns it).
    assert!(matches!(output.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&output.stderr));
}

/// What a call left in the tables, without what differs between runs (ids, times).
fn snapshot(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut by_call: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let keep = |row: &BTreeMap<String, Value>| {
        let mut row = row.clone();
        for volatile in ["run_id", "processed_at"] {
            row.remove(volatile);
        }
        serde_json::to_string(&row).unwrap()
    };
    for table in ["calls", "speech", "events"] {
        for row in read_table(out, table) {
            by_call
                .entry(row["call_id"].as_str().unwrap().to_string())
                .or_default()
                .push(format!("{table} {}", keep(&row)));
        }
    }
    for rows in by_call.values_mut() {
        rows.sort();
    }
    by_call
}

fn failures(out: &Path) -> Vec<String> {
    let mut ids: Vec<String> =
        read_table(out, "failures").iter().map(|r| r["call_id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

fn assert_like_one_process(out: &Path, single: &BTreeMap<String, Vec<String>>, single_failures: &[String]) {
    let calls: Vec<String> =
        read_table(out, "calls").iter().map(|r| r["call_id"].as_str().unwrap().to_string()).collect();
    let unique: BTreeSet<&String> = calls.iter().collect();
    assert_eq!(calls.len(), CALLS, "every call exactly once: {calls:?}");
    assert_eq!(unique.len(), CALLS);
    assert_eq!(&snapshot(out), single, "the shards together wrote what one process writes");
    assert_eq!(failures(out), single_failures, "the broken file failed once, in its shard");
}

#[test]
fn three_shards_side_by_side_write_what_one_process_writes() {
    let input = input();
    let dir = tempfile::tempdir().unwrap();
    let single_out = dir.path().join("single");
    finish(run(input.path(), &single_out, &[], 0));
    let single = snapshot(&single_out);
    let single_failures = failures(&single_out);
    assert_eq!((single.len(), single_failures.len()), (CALLS, 1));

    let kubernetes = dir.path().join("kubernetes");
    let children: Vec<Child> = (0..3)
        .map(|k| {
            let env = [("JOB_COMPLETION_INDEX", k.to_string()), ("CALLQA_SHARDS", "3".to_string())];
            run(input.path(), &kubernetes, &env, 30)
        })
        .collect();
    children.into_iter().for_each(finish);
    assert_like_one_process(&kubernetes, &single, &single_failures);
    let mut shards: Vec<String> =
        read_table(&kubernetes, "runs").iter().map(|r| r["shard"].as_str().unwrap().to_string()).collect();
    shards.sort();
    assert_eq!(shards, ["0/3", "1/3", "2/3"]);

    let slurm = dir.path().join("slurm");
    let children: Vec<Child> = (1..=3)
        .map(|id| {
            let env = [
                ("SLURM_ARRAY_TASK_ID", id.to_string()),
                ("SLURM_ARRAY_TASK_COUNT", "3".to_string()),
                ("SLURM_ARRAY_TASK_MIN", "1".to_string()),
            ];
            run(input.path(), &slurm, &env, 30)
        })
        .collect();
    children.into_iter().for_each(finish);
    assert_like_one_process(&slurm, &single, &single_failures);

    // An unsharded run after the shards finds their calls done, gathers their failures into
    // one file and tries the broken file once more (its second attempt).
    let again =
        callqa_bin().args(["run", "--no-asr", "--input"]).arg(input.path()).arg("--out").arg(&slurm).output().unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains(&format!("0 ok, 1 failed, {CALLS} skipped")), "{stdout}");
    assert_like_one_process(&slurm, &single, &single_failures);
    let files: Vec<String> = std::fs::read_dir(slurm.join("failures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["failures.parquet"]);
}

#[cfg(feature = "test-hooks")]
#[test]
fn a_shard_killed_half_way_and_run_again_alone_leaves_every_call_once() {
    let input = input();
    let dir = tempfile::tempdir().unwrap();
    let single_out = dir.path().join("single");
    finish(run(input.path(), &single_out, &[], 0));
    let (single, single_failures) = (snapshot(&single_out), failures(&single_out));

    let out = dir.path().join("out");
    let shard = |k: usize| [("JOB_COMPLETION_INDEX", k.to_string()), ("CALLQA_SHARDS", "3".to_string())];
    // File operations slowed so the kill lands among commits: after shard 1's second commit.
    let mut children: Vec<Child> = (0..3).map(|k| run(input.path(), &out, &shard(k), 150)).collect();
    let commits_of_shard_1 = || {
        walkdir::WalkDir::new(out.join("calls"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name().to_string_lossy().contains("-s1of3_") && !e.file_name().to_string_lossy().starts_with('.')
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while commits_of_shard_1() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut victim = children.remove(1);
    let killed = victim.try_wait().unwrap().is_none();
    victim.kill().unwrap();
    victim.wait().unwrap();
    children.into_iter().for_each(finish);
    assert!(killed, "shard 1 had finished before the kill");
    let before: usize = read_table(&out, "calls").len();
    assert!(before < CALLS, "the killed shard left calls to do ({before} of {CALLS} committed)");

    finish(run(input.path(), &out, &shard(1), 0));
    assert_like_one_process(&out, &single, &single_failures);
}

/// The deploy examples keep the contract the tests use: the Indexed Job tells callqa its
/// shard count (CALLQA_SHARDS = completions), its config parses, and the sbatch script is
/// valid bash that leaves the shard to Slurm's variables.
#[test]
fn the_deploy_examples_keep_the_shard_contract() {
    let check = std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import sys, yaml, json\n\
             docs = {d['kind']: d for d in yaml.safe_load_all(open(sys.argv[1]))}\n\
             job = docs['Job']['spec']\n\
             container = job['template']['spec']['containers'][0]\n\
             env = {e['name']: e.get('value') for e in container['env']}\n\
             assert job['completionMode'] == 'Indexed', job\n\
             assert env['CALLQA_SHARDS'] == str(job['completions']), (env, job['completions'])\n\
             assert container['command'][:2] == ['callqa', 'run'] and '--shard' not in container['command']\n\
             print(json.dumps(docs['ConfigMap']['data']['callqa.toml']))\n",
        )
        .arg(repo().join("deploy/kubernetes/callqa-nightly.yaml"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let config: String = serde_json::from_slice(&check.stdout).unwrap();
    callqa::config::Config::parse(&config).unwrap();
    let sbatch = repo().join("deploy/slurm/callqa-nightly.sbatch");
    assert!(Command::new("bash").arg("-n").arg(&sbatch).status().unwrap().success());
    let script = std::fs::read_to_string(&sbatch).unwrap();
    assert!(script.contains("callqa run") && !script.contains("--shard"), "Slurm's variables name the shard");
}
