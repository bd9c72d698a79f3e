//! Customer data protection end to end (issue 13): an English call synthesised with
//! espeak-ng in which the customer reads out a phone number, a card number and a resident
//! ID number, through `callqa run --redacted-audio` on the real model, under a permissive
//! umask. Every table is read back with pyarrow (a real client) and searched for the
//! numbers; the muted copy is checked sample by sample; every file and folder written must
//! be owner-only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use callqa::assemble::{self, CallSpec, Codec, Truth, TurnSpec};
use callqa::record::Speaker;
use common::*;

const PHONE: &str = "4155550134";
const CARD: &str = "4539148803436467";
const ID: &str = "110105198004120034";

/// (speaker, text, is a number): a number is its own clip right after the words that name
/// it, so the ground truth says exactly when it was said. espeak-ng's "five" at 8 kHz reads
/// as "time" to Whisper, so the call is 16 kHz (the redaction of misheard numbers has unit
/// tests of its own).
const TURNS: [(Speaker, &str, bool); 11] = [
    (Speaker::Agent, "Thank you for calling, my name is Anna. Can I have a phone number to reach you?", false),
    (Speaker::Customer, "Sure, my phone number is", false),
    (Speaker::Customer, "four one five, five five five, zero one three four.", true),
    (Speaker::Agent, "Thank you. And the card you would like to pay with?", false),
    (Speaker::Customer, "The card number is", false),
    (Speaker::Customer, "four five three nine, one four eight eight, zero three four three, six four six seven.", true),
    (Speaker::Agent, "Thank you. To verify the account, could I have your ID number?", false),
    (Speaker::Customer, "Yes, my ID number is", false),
    (
        Speaker::Customer,
        "one one zero one zero five, one nine eight zero, zero four one two, zero zero three four.",
        true,
    ),
    (Speaker::Agent, "Thank you for your patience, the payment of twenty five dollars went through.", false),
    (Speaker::Customer, "Great, thanks a lot, goodbye.", false),
];

struct Run {
    out: PathBuf,
    audio: PathBuf,
    call: PathBuf,
    truth: Truth,
    stderr: String,
    _dir: tempfile::TempDir,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut turns = Vec::new();
        let mut clips = Vec::new();
        let mut at = 0.5;
        for (i, (speaker, text, is_number)) in TURNS.iter().enumerate() {
            let path = dir.path().join(format!("clip{i}.wav"));
            espeak(text, &path);
            if *is_number {
                // Straight on from the words that name it.
                at -= 0.55;
            }
            let samples = assemble::load_clip(&path).unwrap();
            let seconds = samples.len() as f64 / 16_000.0;
            turns.push(TurnSpec { speaker: *speaker, clip: path, start_s: at, text: text.to_string(), gain_db: 0.0 });
            clips.push(samples);
            at += seconds + 0.8;
        }
        let spec =
            CallSpec { sample_rate_hz: 16000, codec: Codec::PcmS16, mono: false, bleed_db: None, tail_s: 1.0, turns };
        let (wav, truth) = assemble::assemble_with(&spec, &clips).unwrap();
        let input = dir.path().join("calls");
        std::fs::create_dir(&input).unwrap();
        let call = input.join("pii_call.wav");
        std::fs::write(&call, wav).unwrap();
        let (out, audio) = (dir.path().join("out"), dir.path().join("muted"));
        // A umask that would leave everything world-readable: callqa must not.
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"umask 000; exec "$0" "$@""#)
            .arg(env!("CARGO_BIN_EXE_callqa"))
            .args(["run", "--input"])
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .arg("--redacted-audio")
            .arg(&audio)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "{stderr}");
        for row in read_table(&out, "utterances") {
            println!("{} {:.1}-{:.1}: {}", row["speaker"], row["start_s"], row["end_s"], row["text"]);
        }
        Run { out, audio, call, truth, stderr, _dir: dir }
    })
}

/// Every string value of every table, as pyarrow reads them.
fn every_string(out: &Path) -> Vec<String> {
    let script = r#"
import json, sys, pathlib, pyarrow.parquet as pq, pyarrow as pa
values = []
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet")):
    t = pq.read_table(f)
    for name in t.column_names:
        if pa.types.is_string(t.schema.field(name).type):
            values += [v for v in t.column(name).to_pylist() if v is not None]
print(json.dumps(values))
"#;
    let output = std::process::Command::new(python()).arg("-c").arg(script).arg(out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// All digits a text holds however written ("four one five", "４１５", "415").
fn digits_in(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    callqa::privacy::numbers::runs(&chars).iter().flat_map(|r| r.groups.iter().map(|g| g.digits.clone())).collect()
}

#[test]
fn no_table_holds_a_number_the_customer_read_out() {
    let run = run();
    let values = every_string(&run.out);
    assert!(values.len() > 20, "tables hold text: {values:?}");
    let texts: Vec<&String> = values.iter().collect();
    for value in &values {
        let digits = digits_in(value);
        for number in [PHONE, CARD, ID] {
            for window in number.as_bytes().windows(6) {
                let window = std::str::from_utf8(window).unwrap();
                assert!(!digits.contains(window), "{value:?} holds {window} of {number}");
            }
        }
    }
    let utterances = read_table(&run.out, "utterances");
    let customer: String = utterances
        .iter()
        .filter(|r| r["speaker"] == "customer")
        .map(|r| r["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" | ");
    assert!(customer.contains("[PHONE]") && customer.contains("[CARD]") && customer.contains("[ID]"), "{customer}");
    // The agent's price survives.
    let agent: String =
        utterances.iter().filter(|r| r["speaker"] == "agent").map(|r| r["text"].as_str().unwrap()).collect();
    assert!(agent.contains("25") || agent.to_lowercase().contains("twenty"), "{agent}");
    let events = read_table(&run.out, "events");
    let pii: Vec<_> = events.iter().filter(|e| e["kind"] == "pii").collect();
    let mut types: Vec<&str> = pii.iter().map(|e| e["match_type"].as_str().unwrap()).collect();
    types.dedup();
    assert_eq!(types, ["phone", "card", "id"], "{pii:?}");
    assert!(pii.iter().all(|e| e["speaker"] == "customer"));
    assert!(!texts.is_empty());
}

#[test]
fn the_muted_copy_is_silent_where_the_numbers_were_said_and_untouched_elsewhere() {
    let run = run();
    let events = read_table(&run.out, "events");
    let muted_file =
        std::fs::read_dir(run.audio.join(format!("call_date={}", events[0]["call_date"].as_str().unwrap())))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
    let original = callqa::audio::decode::decode_wav(&std::fs::read(&run.call).unwrap(), 3600.0).unwrap();
    let muted = callqa::audio::decode::decode_wav(&std::fs::read(&muted_file).unwrap(), 3600.0).unwrap();
    assert_eq!(original.channels[0].len(), muted.channels[0].len());
    let rate = original.sample_rate_hz as f64;
    let mut silenced = vec![false; original.channels[0].len()];
    for e in events.iter().filter(|e| e["kind"] == "pii") {
        println!("pii {} {}-{}", e["match_type"], e["start_s"], e["end_s"]);
        let pad = callqa::privacy::PrivacySettings::default().audio_pad_s;
        let (start, end) = (e["start_s"].as_f64().unwrap() - pad, e["end_s"].as_f64().unwrap() + pad);
        let range = (start.max(0.0) * rate).round() as usize..((end * rate).round() as usize).min(silenced.len());
        silenced[range].iter_mut().for_each(|s| *s = true);
    }
    for (a, b) in original.channels.iter().zip(&muted.channels) {
        for (i, silent) in silenced.iter().enumerate() {
            if *silent {
                assert_eq!(b[i], 0.0, "sample {i} in a redacted range is not silent");
            } else {
                assert_eq!(a[i], b[i], "sample {i} outside the redacted ranges changed");
            }
        }
    }
    // How much of each clip the muting covers (token times are approximate).
    for (turn, (_, text, is_number)) in run.truth.turns.iter().zip(TURNS) {
        let range = (turn.start_s * rate) as usize..(turn.end_s * rate) as usize;
        let covered = silenced[range.clone()].iter().filter(|s| **s).count() as f64 / range.len() as f64;
        println!("{:.2}-{:.2} s muted {covered:.2}: {text}", turn.start_s, turn.end_s);
        if is_number {
            assert!(covered >= 0.97, "{covered:.2} of {text:?} muted");
        } else {
            // Measured at most 0.25: the words just before a number, inside the 0.5 s pad
            // (the range starts where the token before the number ends: "is", 0.2 s before
            // the first digit).
            assert!(covered <= 0.3, "{covered:.2} of {text:?} muted");
        }
    }
}

#[test]
fn everything_written_is_readable_by_its_owner_only() {
    let run = run();
    let mut checked = 0;
    for root in [&run.out, &run.audio] {
        for entry in walkdir::WalkDir::new(root) {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            let want = if entry.file_type().is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{} is {mode:o}", entry.path().display());
            checked += 1;
        }
    }
    assert!(checked > 15, "{checked} paths");
    assert!(!run.stderr.contains("privacy.redact is off"));
}
