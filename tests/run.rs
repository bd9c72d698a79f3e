//! `callqa run` end to end on the real model (issue 3): a batch of English fixtures, a
//! Mandarin call assembled from real recordings, G.711, mono and broken files; the tables
//! are read back and checked against the ground truth.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use callqa::assemble::{self, CallSpec, Codec, Truth, TurnSpec};
use callqa::record::Speaker;
use callqa::textnorm::{cer, wer};
use common::*;
use serde_json::Value;

type Row = BTreeMap<String, Value>;

struct Batch {
    input: PathBuf,
    out: PathBuf,
    output: Output,
    truths: BTreeMap<String, Truth>,
    _dir: tempfile::TempDir,
}

const ZH_AGENT: [&str; 2] =
    ["FireRedTeam__FireRedASR/BAC009S0764W0121.wav", "xingchensong__S3Tokenizer/BAC009S0764W0122.wav"];
const ZH_CUSTOMER: [&str; 2] = ["PaddlePaddle__PaddleSpeech/zh.wav", "modelscope__FunASR/asr_example.wav"];

/// A two-channel 8 kHz A-law Mandarin call from real recordings, turns alternating.
fn mandarin_call() -> (Vec<u8>, Truth) {
    let mut turns = Vec::new();
    let mut clips = Vec::new();
    let mut at = 0.8;
    for (agent, customer) in ZH_AGENT.iter().zip(ZH_CUSTOMER) {
        for (speaker, file) in [(Speaker::Agent, agent), (Speaker::Customer, &customer)] {
            let (path, text) = clip(file);
            let samples = assemble::load_clip(&path).unwrap();
            let seconds = samples.len() as f64 / 16_000.0;
            turns.push(TurnSpec { speaker, clip: path, start_s: at, text, gain_db: 0.0 });
            clips.push(samples);
            at += seconds + 1.5;
        }
    }
    let spec = CallSpec { sample_rate_hz: 8000, codec: Codec::Alaw, mono: false, bleed_db: None, tail_s: 1.0, turns };
    assemble::assemble_with(&spec, &clips).unwrap()
}

fn batch() -> &'static Batch {
    static BATCH: OnceLock<Batch> = OnceLock::new();
    BATCH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("calls");
        std::fs::create_dir_all(input.join("zh")).unwrap();
        let mut truths = BTreeMap::new();
        for name in ["en_support_pcm16", "en_support_mulaw", "en_support_mono"] {
            std::fs::copy(repo().join(format!("fixtures/calls/{name}.wav")), input.join(format!("{name}.wav")))
                .unwrap();
            let truth: Truth = serde_json::from_str(
                &std::fs::read_to_string(repo().join(format!("fixtures/calls/{name}.truth.json"))).unwrap(),
            )
            .unwrap();
            truths.insert(name.to_string(), truth);
        }
        let (wav, truth) = mandarin_call();
        std::fs::write(input.join("zh/zh_call_alaw.wav"), wav).unwrap();
        truths.insert("zh_call_alaw".into(), truth);
        write_bad_files(&input.join("bad"));
        let out = dir.path().join("out");
        let output = callqa_bin()
            .args(["run", "--input"])
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .args(["--jobs", "2"])
            .output()
            .unwrap();
        Batch { input, out, output, truths, _dir: dir }
    })
}

/// One file per way a recording can be broken.
fn write_bad_files(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let good = std::fs::read(repo().join("fixtures/calls/en_support_pcm16.wav")).unwrap();
    std::fs::write(dir.join("truncated.wav"), &good[..good.len() / 3]).unwrap();
    std::fs::write(dir.join("zero_length.wav"), b"").unwrap();
    std::fs::write(dir.join("not_a_wav.wav"), b"<html>this is not audio</html>").unwrap();
    let mut mp3 = good[..4096].to_vec();
    mp3[20..22].copy_from_slice(&85u16.to_le_bytes()); // WAVE_FORMAT_MPEGLAYER3
    std::fs::write(dir.join("unsupported_codec.wav"), mp3).unwrap();
    let mut absurd = good[..4096].to_vec();
    absurd[24..28].copy_from_slice(&2_000_000_000u32.to_le_bytes());
    std::fs::write(dir.join("absurd_header.wav"), absurd).unwrap();
}

fn rows_of<'a>(rows: &'a [Row], call_id: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r["call_id"] == call_id).collect()
}

fn text_of(rows: &[&Row], speaker: &str) -> String {
    rows.iter().filter(|r| r["speaker"] == speaker).map(|r| r["text"].as_str().unwrap()).collect::<Vec<_>>().join(" ")
}

fn truth_text(truth: &Truth, speaker: Speaker) -> String {
    truth.turns.iter().filter(|t| t.speaker == speaker).map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ")
}

#[test]
fn bad_files_fail_alone_with_a_named_reason_and_exit_code_1() {
    let b = batch();
    let stderr = String::from_utf8_lossy(&b.output.stderr);
    assert_eq!(b.output.status.code(), Some(1), "stderr: {stderr}");
    for (file, reason) in [
        ("truncated.wav", "truncated"),
        ("zero_length.wav", "empty file"),
        ("not_a_wav.wav", "not a WAV"),
        ("unsupported_codec.wav", "format tag 85"),
        ("absurd_header.wav", "sample rate"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.starts_with("failed:") && l.contains(file))
            .unwrap_or_else(|| panic!("no failure line for {file}: {stderr}"));
        assert!(line.contains(reason), "{line:?} should say {reason:?}");
    }
    let stdout = String::from_utf8_lossy(&b.output.stdout);
    assert!(stdout.contains("calls: 4 ok, 5 failed, 0 skipped"), "{stdout}");
    let calls = read_table(&b.out, "calls");
    assert_eq!(calls.len(), 4);
    // Nothing half-written: no temporary files anywhere (the lock file stays, unlocked, and
    // the folder of open-run notes, empty once the run finished).
    let mut hidden: Vec<_> = walkdir::WalkDir::new(&b.out)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path().strip_prefix(&b.out).unwrap().display().to_string())
        .collect();
    hidden.sort();
    assert_eq!(hidden, [".callqa-open-runs", ".callqa.lock"]);
    assert_eq!(std::fs::read_dir(b.out.join(".callqa-open-runs")).unwrap().count(), 0);
}

#[test]
fn calls_table_describes_each_recording() {
    let b = batch();
    let calls = read_table(&b.out, "calls");
    let by_id: BTreeMap<&str, &Row> = calls.iter().map(|r| (r["call_id"].as_str().unwrap(), r)).collect();
    let expect = [
        ("en_support_pcm16", "pcm_s16", 2, "en"),
        ("en_support_mulaw", "mulaw", 2, "en"),
        ("en_support_mono", "pcm_s16", 1, "en"),
        ("zh_call_alaw", "alaw", 2, "zh"),
    ];
    for (id, codec, channels, language) in expect {
        let row = by_id[id];
        assert_eq!(row["codec"], codec, "{id}");
        assert_eq!(row["channels"], channels, "{id}");
        assert_eq!(row["language"], language, "{id}");
        for column in ["agent_language", "customer_language"] {
            let expected = if channels == 2 { Value::from(language) } else { Value::Null };
            assert_eq!(row.get(column).cloned().unwrap_or(Value::Null), expected, "{id}.{column}");
        }
        assert_eq!(row["sample_rate_hz"], 8000);
        let duration = row["duration_s"].as_f64().unwrap();
        assert!((duration - b.truths[id].duration_s).abs() < 0.01, "{id}: {duration}");
        assert_eq!(row["content_sha256"].as_str().unwrap().len(), 64);
        assert!(row["model"].as_str().unwrap().contains("base"));
        assert!(row.get("agent_id").is_none_or(Value::is_null));
        assert!(row["qa_score"].as_f64().is_some_and(|s| (0.0..=100.0).contains(&s)));
        assert!(row["silence_events"].as_i64().is_some(), "silence works on every call");
        let two_party = [
            "agent_talk_s",
            "customer_talk_s",
            "overlap_s",
            "interruptions_by_agent",
            "first_agent_speech_s",
            "agent_rate",
        ];
        for column in two_party {
            let present = row.get(column).is_some_and(|v| !v.is_null());
            assert_eq!(present, channels == 2, "{id}.{column}: null exactly on mono");
        }
    }
    // The fixtures plant a 6 s hold: one dead-air event in each English call.
    for id in ["en_support_pcm16", "en_support_mulaw", "en_support_mono"] {
        assert_eq!(by_id[id]["silence_events"], 1, "{id}");
    }
}

/// Every truth turn is found as an utterance of the same speaker starting within 0.5 s, and
/// every utterance lies over some truth turn of its speaker.
fn assert_timing(rows: &[&Row], truth: &Truth, id: &str) {
    let speaker_name = |s: Speaker| s.as_str().to_string();
    let mut found = 0;
    for turn in &truth.turns {
        let hit = rows.iter().any(|r| {
            r["speaker"] == speaker_name(turn.speaker) && {
                let (s, e) = (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap());
                (s - turn.start_s).abs() < 0.5 || (s < turn.start_s && e > turn.start_s)
            }
        });
        found += usize::from(hit);
    }
    let heard: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {:.2}-{:.2} {}",
                r["speaker"],
                r["start_s"].as_f64().unwrap(),
                r["end_s"].as_f64().unwrap(),
                r["text"]
            )
        })
        .collect();
    let turns: Vec<String> =
        truth.turns.iter().map(|t| format!("{} {:.2}-{:.2}", t.speaker, t.start_s, t.end_s)).collect();
    assert!(
        found * 10 >= truth.turns.len() * 9,
        "{id}: only {found} of {} turns found in time\ntruth: {turns:?}\nheard: {heard:#?}",
        truth.turns.len()
    );
    for r in rows {
        let (s, e) = (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap());
        assert!(e > s, "{id}: {r:?}");
        let over_truth = truth
            .turns
            .iter()
            .any(|t| speaker_name(t.speaker) == r["speaker"] && s < t.end_s + 0.3 && e > t.start_s - 0.3);
        assert!(over_truth, "{id}: utterance at {s:.2}-{e:.2} lies on no turn of its speaker: {r:?}");
    }
}

#[test]
fn english_two_channel_calls_have_speakers_times_and_words() {
    let b = batch();
    let utterances = read_table(&b.out, "utterances");
    for id in ["en_support_pcm16", "en_support_mulaw"] {
        let rows = rows_of(&utterances, id);
        let truth = &b.truths[id];
        assert!(
            rows.len() >= truth.turns.len() - 2 && rows.len() <= truth.turns.len() + 4,
            "{id}: {} rows",
            rows.len()
        );
        assert!(rows.iter().all(|r| r["speaker"] == "agent" || r["speaker"] == "customer"));
        assert_timing(&rows, truth, id);
        for speaker in [Speaker::Agent, Speaker::Customer] {
            let error = wer(&truth_text(truth, speaker), &text_of(&rows, speaker.as_str()));
            // Synthetic speech at 8 kHz (and through G.711) loses consonants: measured 0.18 to
            // 0.32 (2026-11-27, AMD EPYC 2 vCPUs; 0.27 at most before beam search kept its best
            // beams, README Throughput); the margin is one word in about thirty.
            eprintln!("measured {id} {speaker}: WER {error:.3}");
            assert!(error <= 0.35, "{id} {speaker}: WER {error:.2}");
        }
    }
}

#[test]
fn mono_recordings_are_one_mixed_speaker() {
    let b = batch();
    let utterances = read_table(&b.out, "utterances");
    let rows = rows_of(&utterances, "en_support_mono");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["speaker"] == "mixed"));
    assert_timing(&rows, &b.truths["en_support_mono"], "en_support_mono");
    let all_text: String =
        b.truths["en_support_mono"].turns.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ");
    let error = wer(&all_text, &text_of(&rows, "mixed"));
    // Measured 0.28 (both voices mixed on one channel).
    eprintln!("measured mono: WER {error:.3}");
    assert!(error <= 0.33, "WER {error:.2}");
}

#[test]
fn mandarin_call_from_real_recordings_is_transcribed_per_speaker() {
    let b = batch();
    let utterances = read_table(&b.out, "utterances");
    let rows = rows_of(&utterances, "zh_call_alaw");
    let truth = &b.truths["zh_call_alaw"];
    assert_timing(&rows, truth, "zh_call_alaw");
    for speaker in [Speaker::Agent, Speaker::Customer] {
        let hypothesis = text_of(&rows, speaker.as_str());
        let error = cer(&truth_text(truth, speaker), &hypothesis);
        // Measured 0.154 (agent) and 0.000 (customer).
        eprintln!("measured zh {speaker}: CER {error:.3}");
        assert!(error <= 0.20, "{speaker}: CER {error:.3} for {hypothesis:?}");
        assert_eq!(callqa::textnorm::to_simplified(&hypothesis), hypothesis, "Simplified output");
    }
}

#[test]
fn a_real_client_reads_the_tables_without_casts() {
    let b = batch();
    let python = python();
    let output = std::process::Command::new(&python)
        .arg(repo().join("tests/interop/read_tables.py"))
        .arg(&b.out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (scripts/setup.sh --test creates it): {e}"));
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["duckdb_calls"], 4);
    assert_eq!(report["duckdb_call_date_type"], "DATE");
    assert_eq!(report["duckdb_processed_at_type"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(report["pandas_utterances"], report["duckdb_utterances"]);
    assert_eq!(report["polars_calls"], 4);
    assert!(report["description_of_call_id"].as_str().unwrap().contains("identifier"));
}

#[test]
fn a_second_run_skips_calls_already_in_the_tables() {
    let b = batch();
    let again = callqa_bin().args(["run", "--input"]).arg(&b.input).arg("--out").arg(&b.out).output().unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("calls: 0 ok, 5 failed, 4 skipped"), "{stdout}");
    assert_eq!(read_table(&b.out, "calls").len(), 4);
}

#[test]
fn manifest_overrides_agent_channel_and_dates_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("audio/c1.wav");
    std::fs::create_dir_all(wav.parent().unwrap()).unwrap();
    let (bytes, truth) = mandarin_call();
    std::fs::write(&wav, bytes).unwrap();
    std::fs::write(
        dir.path().join("manifest.csv"),
        "path,call_id,agent_id,started_at,agent_channel\naudio/c1.wav,CALL-1,A-42,2026-11-20T09:15:00+08:00,1\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let status = callqa_bin()
        .args(["run", "--input"])
        .arg(dir.path().join("manifest.csv"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(out.join("calls/call_date=2026-11-20").is_dir());
    let calls = read_table(&out, "calls");
    assert_eq!(calls[0]["call_id"], "CALL-1");
    assert_eq!(calls[0]["agent_id"], "A-42");
    assert_eq!(calls[0]["started_at"], "2026-11-20T01:15:00Z");
    // Channel 1 is the agent now: the first truth turn (channel 0) is the customer's.
    let utterances = read_table(&out, "utterances");
    let first = utterances
        .iter()
        .min_by(|a, b| a["start_s"].as_f64().unwrap().total_cmp(&b["start_s"].as_f64().unwrap()))
        .unwrap();
    assert_eq!(first["speaker"], "customer");
    assert!((first["start_s"].as_f64().unwrap() - truth.turns[0].start_s).abs() < 0.5);
}

#[test]
fn schema_and_config_commands() {
    let schema = callqa_bin().arg("schema").output().unwrap();
    let text = String::from_utf8_lossy(&schema.stdout);
    for column in ["content_sha256", "no_speech_prob", "dropped_utterances", "partition"] {
        assert!(text.contains(column), "{column} missing from `callqa schema`");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[vad]\nthreshhold = 0.4\n").unwrap();
    let out = callqa_bin().arg("config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("threshhold") && stderr.contains("bad.toml"), "{stderr}");
    let effective = callqa_bin().arg("config").output().unwrap();
    assert!(String::from_utf8_lossy(&effective.stdout).contains("language = \"auto\""));
}

#[test]
fn implausibly_large_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut bytes = std::fs::read(repo().join("fixtures/calls/en_support_pcm16.wav")).unwrap();
    bytes.resize(bytes.len() + (2 << 20), 0);
    std::fs::write(input.join("big.wav"), bytes).unwrap();
    let config = dir.path().join("tiny.toml");
    // The limit allows at most 1 s of 192 kHz stereo float plus headers (2.5 MB); the file is larger.
    std::fs::write(&config, "[decode]\nmax_duration_s = 1.0\n").unwrap();
    let output = callqa_bin()
        .args(["run", "--no-asr", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("big.wav") && stderr.contains("larger than any recording"), "{stderr}");
}

#[test]
fn a_call_processed_again_replaces_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("calls"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    for name in ["en_support_pcm16", "en_support_mulaw"] {
        std::fs::copy(repo().join(format!("fixtures/calls/{name}.wav")), input.join(format!("{name}.wav"))).unwrap();
    }
    let run = |extra: &[&str]| {
        let output = callqa_bin()
            .args(["run", "--no-asr", "--input"])
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    run(&[]);
    let events = read_table(&out, "events").len();
    assert!(events > 0);
    // Forced: both calls again, one version each in every table.
    assert!(run(&["--reprocess"]).contains("calls: 2 ok"));
    let calls = read_table(&out, "calls");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["run_id"], calls[1]["run_id"], "both rows come from the second run");
    assert_eq!(read_table(&out, "events").len(), events);
    // New audio under the same call id: processed again, the old version goes.
    std::fs::copy(repo().join("fixtures/calls/en_support_mono.wav"), input.join("en_support_pcm16.wav")).unwrap();
    assert!(run(&[]).contains("calls: 1 ok, 0 failed, 1 skipped"));
    let calls = read_table(&out, "calls");
    assert_eq!(calls.len(), 2);
    let changed = calls.iter().find(|c| c["call_id"] == "en_support_pcm16").unwrap();
    assert_eq!(changed["channels"], 1);
}
