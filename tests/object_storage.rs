//! Object storage (issue 12, item 2) against a real S3 server on loopback (moto in server mode,
//! which honours `If-None-Match` and `If-Match` as S3 does): recordings read from a bucket,
//! tables written to a bucket by three shard processes side by side, with the Kubernetes
//! variables and again with the Slurm variables (from a manifest in the bucket), equal a single
//! process, every call once; a shard killed half way and run again alone (taking over its
//! lapsed lease) still leaves every call once; pyarrow and Polars read the tables from the bucket.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const CALLS: usize = 12;

struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    fn start() -> S3Server {
        let mut child = Command::new(python())
            .arg(repo().join("tests/interop/s3_server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto runs (scripts/setup.sh --test installs it)");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
        let port: u16 = port.trim().parse().expect("the S3 server printed the port it listens on");
        S3Server { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    fn tables(&self, args: &[&str]) -> String {
        let output = Command::new(python())
            .arg(repo().join("tests/interop/s3_tables.py"))
            .arg(&self.endpoint)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `callqa run --no-asr` with the store's settings in the environment.
    fn run(&self, input: &str, out: &str, env: &[(&str, String)], pause_ms: u64) -> Child {
        let args = ["run", "--no-asr", "--commit-every", "1", "--input", input, "--out", out];
        self.callqa(&args, env, pause_ms).spawn().unwrap()
    }

    fn callqa(&self, args: &[&str], env: &[(&str, String)], pause_ms: u64) -> Command {
        let mut cmd = callqa_bin();
        cmd.args(args);
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("CALLQA_LEASE_S", "3"),
        ] {
            cmd.env(k, v);
        }
        cmd.env("CALLQA_TEST_IO_PAUSE_MS", pause_ms.to_string());
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// The tables under `s3://calls-out/<prefix>`, downloaded and read by our reader, without
    /// what differs between runs.
    fn snapshot(&self, prefix: &str) -> BTreeMap<String, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        self.tables(&["get", "calls-out", prefix, dir.path().to_str().unwrap()]);
        let mut by_call: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for table in ["calls", "speech", "events", "failures"] {
            for mut row in read_table(dir.path(), table) {
                for volatile in ["run_id", "processed_at", "failed_at"] {
                    row.remove(volatile);
                }
                let id = row["call_id"].as_str().unwrap().to_string();
                by_call.entry(id).or_default().push(format!("{table} {}", serde_json::to_string(&row).unwrap()));
            }
        }
        by_call.values_mut().for_each(|rows| rows.sort());
        by_call
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn finish(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 1: some call failed (the broken file, in the shard that owns it).
    assert!(matches!(output.status.code(), Some(0 | 1)), "{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn calls_once(snapshot: &BTreeMap<String, Vec<String>>) {
    let broken = snapshot["broken"].clone();
    assert_eq!(broken.len(), 1, "the broken file failed once: {broken:?}");
    assert!(broken[0].starts_with("failures "));
    for (id, rows) in snapshot.iter().filter(|(id, _)| *id != "broken") {
        assert_eq!(rows.iter().filter(|r| r.starts_with("calls ")).count(), 1, "{id} once in calls");
    }
    assert_eq!(snapshot.len(), CALLS + 1);
}

#[test]
fn shards_read_recordings_from_a_bucket_and_write_tables_to_one_exactly_once() {
    let s3 = S3Server::start();
    let input = tempfile::tempdir().unwrap();
    assembled_calls(input.path(), CALLS, 28);
    std::fs::write(input.path().join("broken.wav"), b"RIFF\0\0\0\0WAVEnot a wav at all").unwrap();
    let manifest: String = std::iter::once("path,call_id".to_string())
        .chain((0..CALLS).map(|k| format!("call{k:02}.wav,call{k:02}")))
        .chain(std::iter::once("broken.wav,broken".to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(input.path().join("manifest.csv"), manifest).unwrap();
    s3.tables(&["put", "calls-in", "night", input.path().to_str().unwrap()]);
    s3.tables(&["put", "calls-out", "empty", tempfile::tempdir().unwrap().path().to_str().unwrap()]);

    // One process, bucket to bucket: the reference.
    let summary = finish(s3.run("s3://calls-in/night", "s3://calls-out/single", &[], 0));
    assert!(summary.contains(&format!("{CALLS} ok, 1 failed")), "{summary}");
    let single = s3.snapshot("single");
    calls_once(&single);

    // Three Kubernetes pods side by side, the input a prefix.
    let pods: Vec<Child> = (0..3)
        .map(|k| {
            let env = [("JOB_COMPLETION_INDEX", k.to_string()), ("CALLQA_SHARDS", "3".to_string())];
            s3.run("s3://calls-in/night", "s3://calls-out/kubernetes", &env, 30)
        })
        .collect();
    pods.into_iter().for_each(|p| drop(finish(p)));
    assert_eq!(s3.snapshot("kubernetes"), single, "three pods wrote what one process writes");

    // Three Slurm array tasks, the input a manifest in the bucket.
    let tasks: Vec<Child> = (1..=3)
        .map(|id| {
            let env = [
                ("SLURM_ARRAY_TASK_ID", id.to_string()),
                ("SLURM_ARRAY_TASK_COUNT", "3".to_string()),
                ("SLURM_ARRAY_TASK_MIN", "1".to_string()),
            ];
            s3.run("s3://calls-in/night/manifest.csv", "s3://calls-out/slurm", &env, 30)
        })
        .collect();
    tasks.into_iter().for_each(|t| drop(finish(t)));
    assert_eq!(s3.snapshot("slurm"), single, "three array tasks wrote what one process writes");

    // Real clients read the tables where they lie.
    let report: Value = serde_json::from_str(&s3.tables(&["read", "calls-out", "slurm"])).unwrap();
    assert_eq!(report["pyarrow_calls"], CALLS, "{report}");
    assert_eq!(report["polars_calls"], CALLS, "{report}");
    assert_eq!(report["polars_unique_calls"], CALLS, "{report}");
    assert_eq!(report["polars_call_date_type"], "Date", "{report}");
    assert_eq!(report["pyarrow_failures"], 1, "{report}");
    assert_eq!(report["pyarrow_runs"], 3, "{report}");
    let keys: Vec<String> = serde_json::from_str(&s3.tables(&["keys", "calls-out", "slurm"])).unwrap();
    assert!(keys.iter().all(|k| !k.contains(".callqa-locks/")), "leases are given back: {keys:?}");

    // Compaction on the bucket: one file per table, the same rows; a second one does nothing.
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let compact = ["compact", "--out", "s3://calls-out/slurm", "--before", tomorrow.as_str()];
    let first = finish(s3.callqa(&compact, &[], 0).spawn().unwrap());
    assert!(first.contains("compacted 1 partitions"), "{first}");
    assert_eq!(s3.snapshot("slurm"), single, "compaction kept every row once");
    let keys: Vec<String> = serde_json::from_str(&s3.tables(&["keys", "calls-out", "slurm"])).unwrap();
    let calls_files: Vec<&String> = keys.iter().filter(|k| k.contains("/calls/")).collect();
    assert_eq!(calls_files.len(), 1, "{calls_files:?}");
    assert!(keys.iter().all(|k| !k.contains(".callqa-compact/")), "staging cleared: {keys:?}");
    let again = finish(s3.callqa(&compact, &[], 0).spawn().unwrap());
    assert!(again.contains("compacted 0 partitions"), "{again}");

    // A shard killed half way, then run again alone: it waits out its dead lease (3 s here).
    let shard = |k: usize| [("JOB_COMPLETION_INDEX", k.to_string()), ("CALLQA_SHARDS", "3".to_string())];
    // The victim's I/O is slowest, so that it is still at work when the poll below (a Python
    // listing, which takes a second or more on a loaded machine) sees its second commit: at
    // 150 ms it once committed all its calls before the kill.
    let pause_ms = |k: usize| if k == 1 { 600 } else { 150 };
    let mut pods: Vec<Child> =
        (0..3).map(|k| s3.run("s3://calls-in/night", "s3://calls-out/killed", &shard(k), pause_ms(k))).collect();
    // After shard 1's second commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let keys: Vec<String> = serde_json::from_str(&s3.tables(&["keys", "calls-out", "killed"])).unwrap();
        if keys.iter().filter(|k| k.contains("/calls/") && k.contains("-s1of3_")).count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut victim = pods.remove(1);
    let killed = victim.try_wait().unwrap().is_none();
    victim.kill().unwrap();
    victim.wait().unwrap();
    pods.into_iter().for_each(|p| drop(finish(p)));
    assert!(killed, "shard 1 had finished before the kill");
    let partial = s3.snapshot("killed");
    let committed = partial.values().filter(|rows| rows.iter().any(|r| r.starts_with("calls "))).count();
    assert!(committed < CALLS, "the killed shard left calls to do ({committed} of {CALLS} committed)");
    let lease = |prefix: &str| {
        let keys: Vec<String> = serde_json::from_str(&s3.tables(&["keys", "calls-out", prefix])).unwrap();
        keys.iter().any(|k| k.ends_with(".callqa-locks/shard-s1of3.json"))
    };
    assert!(lease("killed"), "the killed shard's lease is still there");
    finish(s3.run("s3://calls-in/night", "s3://calls-out/killed", &shard(1), 0));
    assert!(!lease("killed"), "the rerun took the dead lease over and gave it back");
    assert_eq!(s3.snapshot("killed"), single, "every call once after the rerun");
}

/// A bucket that does not exist, or credentials that do not work, stop the run naming the URL.
#[test]
fn an_unreachable_output_is_named() {
    let s3 = S3Server::start();
    let input = tempfile::tempdir().unwrap();
    assembled_calls(input.path(), 1, 29);
    let child = s3.run(input.path().to_str().unwrap(), "s3://no-such-bucket/out", &[], 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("s3://no-such-bucket/out"), "{stderr}");
}

/// Leases do what `flock` does on a disk: a second copy of a running shard is refused naming
/// the first, and so is an unsharded run while a shard runs.
#[test]
fn a_twin_shard_and_a_whole_run_are_refused_while_a_shard_holds_its_lease() {
    let s3 = S3Server::start();
    let input = tempfile::tempdir().unwrap();
    assembled_calls(input.path(), 4, 30);
    s3.tables(&["put", "calls-in", "twin", input.path().to_str().unwrap()]);
    s3.tables(&["put", "calls-out", "empty", tempfile::tempdir().unwrap().path().to_str().unwrap()]);
    let shard = [("JOB_COMPLETION_INDEX", "0".to_string()), ("CALLQA_SHARDS", "1".to_string())];
    // Slowed so that it still holds its lease while the others try.
    let first = s3.run("s3://calls-in/twin", "s3://calls-out/twin", &shard, 400);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let keys: Vec<String> = serde_json::from_str(&s3.tables(&["keys", "calls-out", "twin"])).unwrap();
        if keys.iter().any(|k| k.ends_with("shard-s0of1.json")) {
            break;
        }
        assert!(Instant::now() < deadline, "the first shard took no lease");
        std::thread::sleep(Duration::from_millis(100));
    }
    for env in [&shard[..], &[]] {
        let output = s3.run("s3://calls-in/twin", "s3://calls-out/twin", env, 0).wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("in use by another callqa run") && stderr.contains("pid"), "{stderr}");
    }
    let summary = finish(first);
    assert!(summary.contains("4 ok"), "{summary}");
}
