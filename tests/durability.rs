//! Nightly runs that never lose a night (issue 11), on the real model: kills at random
//! instants, crashes inside transcription, hangs, two runs on one output, special files,
//! corrupt samples and the skip key. Needs the `test-hooks` feature (scripts/test.sh sets
//! it) for the fault injection in the worker process.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use callqa::assemble::{self, CallSpec, Codec, TurnSpec};
use callqa::record::Speaker;
use common::*;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const ZH: [&str; 4] = [
    "wenet-e2e__wenet/aishell-BAC009S0724W0121.wav",
    "xingchensong__S3Tokenizer/BAC009S0764W0122.wav",
    "FireRedTeam__FireRedASR/IT0011W0001.wav",
    "wenet-e2e__wenet/NST_example_ID002.wav",
];
const EN: [&str; 4] = [
    "k2-fsa__sherpa/1221-135766-0002.wav",
    "k2-fsa__sherpa/1089-134686-0001.wav",
    "k2-fsa__icefall/Lab41-SRI-VOiCES-src-sp0307-ch127535-sg0042.wav",
    "SYSTRAN__faster-whisper/stereo_diarization.wav",
];

/// `n` short two-channel 8 kHz calls (agent turn, customer turn) from real recordings, clips,
/// gaps and codecs drawn with `seed`.
fn write_calls(dir: &Path, n: usize, seed: u64) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let pool = if i % 2 == 0 { &ZH } else { &EN };
            let files = [pool[rng.random_range(0..4)], pool[rng.random_range(0..4)]];
            let clips: Vec<Vec<f32>> = files.iter().map(|f| assemble::load_clip(&corpus(f)).unwrap()).collect();
            let agent_s = clips[0].len() as f64 / 16_000.0;
            let turns = vec![
                TurnSpec {
                    speaker: Speaker::Agent,
                    clip: files[0].into(),
                    start_s: rng.random_range(0.3..1.0),
                    text: String::new(),
                    gain_db: 0.0,
                },
                TurnSpec {
                    speaker: Speaker::Customer,
                    clip: files[1].into(),
                    start_s: agent_s + rng.random_range(1.0..2.0),
                    text: String::new(),
                    gain_db: 0.0,
                },
            ];
            let codec = if rng.random_bool(0.5) { Codec::PcmS16 } else { Codec::Mulaw };
            let spec = CallSpec { sample_rate_hz: 8000, codec, mono: false, bleed_db: None, tail_s: 0.5, turns };
            let (wav, _) = assemble::assemble_with(&spec, &clips).unwrap();
            let id = format!("call{i:02}");
            std::fs::write(dir.join(format!("{id}.wav")), wav).unwrap();
            id
        })
        .collect()
}

/// Greedy decoding and one thread: the same transcript every run, so row counts compare.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("callqa.toml");
    std::fs::write(&path, format!("[asr]\nbeam_size = 1\nthreads = 1\n{extra}")).unwrap();
    path
}

fn run_cmd(input: &Path, out: &Path, config: &Path, extra: &[&str]) -> Command {
    let mut cmd = callqa_bin();
    cmd.args(["run", "--input"]).arg(input).arg("--out").arg(out).arg("--config").arg(config).args(extra);
    cmd.env("CALLQA_LOG", "warn");
    cmd
}

fn run(input: &Path, out: &Path, config: &Path, extra: &[&str], fault: Option<&str>) -> Output {
    let mut cmd = run_cmd(input, out, config, extra);
    if let Some(fault) = fault {
        cmd.env("CALLQA_TEST_FAULT", fault);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Rows per call_id in a table.
fn rows_per_call(out: &Path, table: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in read_table(out, table) {
        *counts.entry(row["call_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    counts
}

fn files_named(out: &Path, wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    walkdir::WalkDir::new(out)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && wanted(&e.file_name().to_string_lossy()))
        .map(|e| e.into_path())
        .collect()
}

/// Every call exactly once in calls, with exactly the utterances and events of an
/// uninterrupted run; no temporaries; no child file without its commit marker.
fn assert_exactly_once(out: &Path, reference: &Path, ids: &[String]) {
    let calls = rows_per_call(out, "calls");
    assert_eq!(calls.keys().cloned().collect::<Vec<_>>(), ids, "every call committed");
    assert!(calls.values().all(|&n| n == 1), "a call twice in calls: {calls:?}");
    for table in ["utterances", "events"] {
        assert_eq!(
            rows_per_call(out, table),
            rows_per_call(reference, table),
            "{table} differ from an uninterrupted run"
        );
    }
    let temporaries = files_named(out, |n| n.ends_with(".tmp") || n.starts_with(".callqa-write-probe"));
    assert!(temporaries.is_empty(), "left behind: {temporaries:?}");
    for table in ["utterances", "events"] {
        for file in files_named(&out.join(table), |n| n.ends_with(".parquet")) {
            let marker = out.join("calls").join(file.strip_prefix(out.join(table)).unwrap());
            assert!(marker.exists(), "{} has no calls file beside it", file.display());
        }
    }
}

#[test]
fn killed_at_random_instants_every_call_lands_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    let ids = write_calls(&input, 8, 0x5eed_2026_1125);
    let config = config(dir.path(), "");
    let reference = dir.path().join("reference");
    // Timed as the killed runs will run: a commit per call, file operations slowed.
    let clock = Instant::now();
    let done = run_cmd(&input, &reference, &config, &["--commit-every", "1"])
        .env("CALLQA_TEST_IO_PAUSE_MS", "150")
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let full = clock.elapsed();
    assert!(rows_per_call(&reference, "utterances").len() == ids.len(), "every reference call has words");

    let out = dir.path().join("out");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261125);
    let mut committed: BTreeSet<String> = BTreeSet::new();
    let (mut kills, mut kills_mid_commit) = (0, 0);
    for round in 0..24 {
        // Every fourth run reprocesses (so older rows get deleted), and so does any run with
        // nothing left to do. A quarter of the kills land in the first half second (lock,
        // recovery, model load), the rest anywhere in the work the run has left.
        let remaining = ids.len() - committed.len();
        let reprocess = round % 4 == 3 || remaining == 0;
        let expected = if reprocess { full } else { full.mul_f64(0.15 + 0.85 * remaining as f64 / ids.len() as f64) };
        let at = if rng.random_bool(0.25) {
            Duration::from_millis(rng.random_range(0..500))
        } else {
            expected.mul_f64(rng.random_range(0.05..0.95))
        };
        let extra: &[&str] = if reprocess { &["--reprocess", "--commit-every", "1"] } else { &["--commit-every", "1"] };
        // Every table-file rename and delete waits 150 ms first, so commits and recoveries
        // take a good share of a run and random kills land inside them.
        let mut child = run_cmd(&input, &out, &config, extra)
            .env("CALLQA_TEST_IO_PAUSE_MS", "150")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        // Debris of an interrupted commit or recovery: a temporary, or a child file without
        // its calls file. The next run's recovery must clear it.
        let debris = !files_named(&out, |n| n.ends_with(".tmp")).is_empty()
            || ["utterances", "events"].iter().any(|table| {
                files_named(&out.join(table), |n| n.ends_with(".parquet"))
                    .iter()
                    .any(|f| !out.join("calls").join(f.strip_prefix(out.join(table)).unwrap()).exists())
            });
        kills_mid_commit += usize::from(debris);
        // Nothing committed is ever lost, even before the next run recovers.
        let now: BTreeSet<String> = rows_per_call(&out, "calls").into_keys().collect();
        assert!(committed.is_subset(&now), "round {round}: lost {:?}", committed.difference(&now).collect::<Vec<_>>());
        committed = now;
    }
    eprintln!("{kills} of 24 runs killed mid-way, {kills_mid_commit} inside a commit or a recovery");
    assert!(kills >= 20, "only {kills} runs were killed mid-way");
    assert!(kills_mid_commit >= 4, "only {kills_mid_commit} kills interrupted a commit or a recovery");
    let last = run(&input, &out, &config, &[], None);
    assert_eq!(last.status.code(), Some(0), "{}", stderr(&last));
    assert_exactly_once(&out, &reference, &ids);
    // And a run after that has nothing left to do.
    let again = run(&input, &out, &config, &[], None);
    let nothing_left = format!("calls: 0 ok, 0 failed, {} skipped", ids.len());
    assert!(stdout(&again).contains(&nothing_left), "{}", stdout(&again));
}

fn failures(out: &Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    read_table(out, "failures").into_iter().map(|r| (r["call_id"].as_str().unwrap().to_string(), r)).collect()
}

#[test]
fn a_crashing_worker_fails_only_its_call_which_is_retried_once_then_left() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    let ids = write_calls(&input, 4, 77);
    let config = config(dir.path(), "");
    let out = dir.path().join("out");
    let fault = Some("abort:call01,segv:call02");

    let first = run(&input, &out, &config, &[], fault);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    assert!(stdout(&first).contains("calls: 2 ok, 2 failed, 0 skipped"), "{}", stdout(&first));
    let calls: BTreeSet<String> = rows_per_call(&out, "calls").into_keys().collect();
    assert_eq!(calls, BTreeSet::from([ids[0].clone(), ids[3].clone()]));
    let f = failures(&out);
    assert_eq!(f.len(), 2);
    for (id, signal) in [("call01", "SIGABRT"), ("call02", "SIGSEGV")] {
        assert_eq!(f[id]["stage"], "transcribe");
        assert_eq!(f[id]["error_type"], "worker_crashed");
        assert!(f[id]["reason"].as_str().unwrap().contains(signal), "{:?}", f[id]["reason"]);
        assert_eq!(f[id]["attempts"], 1);
        assert_eq!(f[id]["content_sha256"].as_str().unwrap().len(), 64);
    }
    assert!(stderr(&first).contains("call01") && stderr(&first).contains("SIGABRT"), "{}", stderr(&first));

    let second = run(&input, &out, &config, &[], fault);
    assert_eq!(second.status.code(), Some(1));
    assert!(stdout(&second).contains("calls: 0 ok, 2 failed, 2 skipped"), "{}", stdout(&second));
    assert!(failures(&out).values().all(|r| r["attempts"] == 2));

    let third = run(&input, &out, &config, &[], fault);
    assert_eq!(third.status.code(), Some(0), "left alone after max_attempts: {}", stderr(&third));
    assert!(stdout(&third).contains("calls: 0 ok, 0 failed, 4 skipped (2 left after"), "{}", stdout(&third));
    assert_eq!(failures(&out).len(), 2, "left with their reason");

    // Fixed (no fault) and allowed another attempt: they succeed and leave the failures table.
    let fourth = run(&input, &out, &config, &["--max-attempts", "3"], None);
    assert_eq!(fourth.status.code(), Some(0), "{}", stderr(&fourth));
    assert!(stdout(&fourth).contains("calls: 2 ok"), "{}", stdout(&fourth));
    assert!(failures(&out).is_empty());
    assert_eq!(rows_per_call(&out, "calls").len(), 4);

    // Each run left its row in runs, finished, with the exit status it returned.
    let runs = read_table(&out, "runs");
    assert_eq!(runs.len(), 4);
    let mut statuses: Vec<i64> = runs.iter().map(|r| r["exit_status"].as_i64().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, vec![0, 0, 1, 1]);
    assert!(runs.iter().all(|r| r["finished_at"].is_string() && r["host"].is_string()));
}

#[test]
fn a_dtw_crash_falls_back_to_whisper_timestamps_for_that_window() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    write_calls(&input, 2, 5);
    let config = config(dir.path(), "");
    let out = dir.path().join("out");
    let stats = dir.path().join("stats.json");
    let o = run(&input, &out, &config, &["--stats", stats.to_str().unwrap()], Some("dtw-abort:call00"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert!(summary["dtw_fallbacks"].as_u64().unwrap() >= 1, "{summary}");
    assert!(rows_per_call(&out, "utterances").get("call00").is_some_and(|&n| n > 0));
}

#[test]
fn a_call_that_hangs_is_stopped_by_its_time_budget() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    write_calls(&input, 2, 9);
    // The budget must still let call00 finish on a slow, loaded CI machine: 4 s did not on a
    // 2-vCPU AVX2 one with another test's workers beside it.
    let config = config(dir.path(), "time_budget_x_audio = 0.1\nmin_time_budget_s = 15.0\n");
    let out = dir.path().join("out");
    let clock = Instant::now();
    let o = run(&input, &out, &config, &[], Some("hang:call01"));
    assert!(clock.elapsed() < Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f = failures(&out);
    assert_eq!(f["call01"]["error_type"], "time_budget_exceeded");
    assert!(rows_per_call(&out, "calls").contains_key("call00"));
}

#[test]
fn a_second_run_on_the_same_output_stops_at_once_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    write_calls(&input, 1, 11);
    let config = config(dir.path(), "");
    let out = dir.path().join("out");
    let mut first = run_cmd(&input, &out, &config, &[])
        .env("CALLQA_TEST_FAULT", "hang:call00")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".callqa.lock");
    wait_until(Duration::from_secs(30), "the first run never took the lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| !t.is_empty())
    });
    let clock = Instant::now();
    let second = run(&input, &out, &config, &[], None);
    assert!(clock.elapsed() < Duration::from_secs(10));
    assert_eq!(second.status.code(), Some(2));
    let message = stderr(&second);
    assert!(message.contains(&format!("pid {}", first.id())) && message.contains("in use"), "{message}");
    first.kill().unwrap();
    first.wait().unwrap();
    // The kernel let go with the process: the next run proceeds.
    let third = run(&input, &out, &config, &[], None);
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
}

#[test]
fn the_skip_key_is_what_was_computed_and_no_asr_never_erases_transcripts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    write_calls(&input, 2, 13);
    let config = config(dir.path(), "");
    let out = dir.path().join("out");
    let acoustic = run(&input, &out, &config, &["--no-asr"], None);
    assert!(stdout(&acoustic).contains("calls: 2 ok"), "{}", stdout(&acoustic));
    // (Arrow's JSON writer leaves null columns out of a row.)
    assert!(read_table(&out, "calls").iter().all(|c| c.get("model").is_none_or(Value::is_null)));
    let with_asr = run(&input, &out, &config, &[], None);
    assert!(stdout(&with_asr).contains("calls: 2 ok, 0 failed, 0 skipped"), "{}", stdout(&with_asr));
    let calls = read_table(&out, "calls");
    assert_eq!(calls.len(), 2, "the acoustic versions were replaced");
    let default_file = callqa::model::registry::Registry::bundled().default_file_name();
    let default_model = callqa::asr::model_name(std::path::Path::new(&default_file));
    assert!(calls.iter().all(|c| c["model"] == default_model.as_str()), "{calls:?}");
    let utterances = read_table(&out, "utterances").len();
    assert!(utterances > 0);
    let forced = run(&input, &out, &config, &["--no-asr", "--reprocess"], None);
    assert!(stdout(&forced).contains("calls: 0 ok, 0 failed, 2 skipped"), "{}", stdout(&forced));
    assert_eq!(read_table(&out, "utterances").len(), utterances);
}

/// A float WAV with NaN (and one with huge values) at 16 and 8 kHz, a FIFO and /dev/zero in a
/// manifest, a dangling symlink and a symlink loop in a folder: each a failure row with a
/// named reason; nothing hangs; the good call lands.
#[test]
fn bad_samples_special_files_and_links_are_failure_rows_not_crashes_or_silence() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    write_calls(&input, 1, 17);
    let speech = assemble::load_clip(&corpus(ZH[0])).unwrap();
    for (name, rate, poison) in [("nan16k", 16_000, f32::NAN), ("inf8k", 8_000, f32::INFINITY), ("huge8k", 8_000, 1e30)]
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(input.join(format!("{name}.wav")), spec).unwrap();
        for (i, s) in speech.iter().step_by((16_000 / rate) as usize).enumerate() {
            w.write_sample(if i % 97 == 0 { poison } else { *s }).unwrap();
        }
        w.finalize().unwrap();
    }
    symlink(dir.path().join("gone.wav"), input.join("dangling.wav")).unwrap();
    std::fs::create_dir(input.join("sub")).unwrap();
    symlink(&input, input.join("sub/loop")).unwrap();
    let config = config(dir.path(), "");
    let out = dir.path().join("out");
    let o = run(&input, &out, &config, &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f = failures(&out);
    assert_eq!(f["nan16k"]["error_type"], "invalid_samples");
    assert!(f["nan16k"]["reason"].as_str().unwrap().contains("not a finite number"));
    assert_eq!(f["inf8k"]["error_type"], "invalid_samples");
    assert_eq!(f["dangling"]["error_type"], "not_found");
    assert_eq!(f["loop"]["error_type"], "symlink_loop");
    let calls = rows_per_call(&out, "calls");
    assert!(calls.contains_key("call00") && calls.contains_key("huge8k"), "{calls:?}");

    let fifo = dir.path().join("pipe.wav");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let manifest = dir.path().join("manifest.csv");
    std::fs::write(
        &manifest,
        format!("path,call_id\n{},fifo\n/dev/zero,zero\n{},good\n", fifo.display(), input.join("call00.wav").display()),
    )
    .unwrap();
    let clock = Instant::now();
    let o = run(&manifest, &dir.path().join("out2"), &config, &[], None);
    assert!(clock.elapsed() < Duration::from_secs(60), "a FIFO or /dev/zero was read");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f = failures(&dir.path().join("out2"));
    assert_eq!(f["fifo"]["error_type"], "not_regular_file");
    assert_eq!(f["zero"]["error_type"], "not_regular_file");
    assert!(rows_per_call(&dir.path().join("out2"), "calls").contains_key("good"));
}

#[test]
fn settings_out_of_range_stop_the_run_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    std::fs::create_dir_all(&input).unwrap();
    for (text, key) in [("[asr]\nthreads = 1000\n", "asr.threads"), ("[asr]\nbeam_size = 100000\n", "asr.beam_size")] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, text).unwrap();
        let o = callqa_bin()
            .args(["run", "--input"])
            .arg(&input)
            .arg("--out")
            .arg(dir.path().join("o"))
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(key) && stderr(&o).contains("allowed"), "{}", stderr(&o));
    }
    let o = callqa_bin()
        .args(["run", "--commit-every", "0", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("run.commit_every"), "{}", stderr(&o));
}
