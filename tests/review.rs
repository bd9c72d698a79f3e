//! Sampling, the agent report and the notebook on the output of a real `callqa run` (issue 7).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use callqa::assemble::{self, CallSpec, Codec, TurnSpec};
use callqa::record::Speaker;
use common::*;

struct Month {
    out: PathBuf,
    _dir: tempfile::TempDir,
}

/// Four calls of two agents in October 2026: the English fixtures and a Mandarin call from
/// real recordings (which misses the required greeting, so it is flagged).
fn month() -> &'static Month {
    static MONTH: std::sync::OnceLock<Month> = std::sync::OnceLock::new();
    MONTH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let audio = dir.path().join("audio");
        std::fs::create_dir_all(&audio).unwrap();
        for name in ["en_support_pcm16", "en_support_mulaw", "en_support_mono"] {
            std::fs::copy(repo().join(format!("fixtures/calls/{name}.wav")), audio.join(format!("{name}.wav")))
                .unwrap();
        }
        let files = ["FireRedTeam__FireRedASR/BAC009S0764W0121.wav", "PaddlePaddle__PaddleSpeech/zh.wav"];
        let clips: Vec<Vec<f32>> = files.iter().map(|f| assemble::load_clip(&corpus(f)).unwrap()).collect();
        let spec = CallSpec {
            sample_rate_hz: 8000,
            codec: Codec::PcmS16,
            mono: false,
            bleed_db: None,
            tail_s: 1.0,
            turns: vec![
                TurnSpec {
                    speaker: Speaker::Agent,
                    clip: files[0].into(),
                    start_s: 0.5,
                    text: String::new(),
                    gain_db: 0.0,
                },
                TurnSpec {
                    speaker: Speaker::Customer,
                    clip: files[1].into(),
                    start_s: 6.0,
                    text: String::new(),
                    gain_db: 0.0,
                },
            ],
        };
        std::fs::write(audio.join("zh.wav"), assemble::assemble_with(&spec, &clips).unwrap().0).unwrap();
        std::fs::write(
            dir.path().join("calls.csv"),
            "path,call_id,agent_id,started_at\n\
             audio/en_support_pcm16.wav,A1-1,A1,2026-10-05T09:00:00Z\n\
             audio/en_support_mulaw.wav,A1-2,A1,2026-10-06T09:00:00Z\n\
             audio/en_support_mono.wav,A2-1,A2,2026-10-07T09:00:00Z\n\
             audio/zh.wav,A2-2,A2,2026-10-08T09:00:00Z\n",
        )
        .unwrap();
        let out = dir.path().join("out");
        let status = callqa_bin()
            .args(["run", "--jobs", "2", "--input"])
            .arg(dir.path().join("calls.csv"))
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        Month { out, _dir: dir }
    })
}

fn callqa(args: &[&str], out: &Path) -> String {
    let output = callqa_bin().args(args).arg("--out").arg(out).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn sample_report_browser_and_notebook_on_a_real_run() {
    let m = month();
    let out = m.out.as_path();

    // Sample: everyone gets their calls (fewer than the per-agent minimum), flagged ones are risk.
    let first = callqa(&["sample", "--month", "2026-10"], out);
    assert!(first.contains("4 of 4 calls selected"), "{first}");
    let samples = read_table(out, "samples");
    assert_eq!(samples.len(), 4);
    let zh = samples.iter().find(|s| s["call_id"] == "A2-2").unwrap();
    assert_eq!(zh["stratum"], "risk", "{zh:?}");
    assert!(zh["reason"].as_str().unwrap().contains("required_phrase_missing"));
    assert!(samples
        .iter()
        .all(|s| (0.0..=1.0).contains(&s["inclusion_prob"].as_f64().unwrap())
            && s["inclusion_prob"].as_f64().unwrap() > 0.0));
    // Deterministic: the same seed draws the same calls.
    callqa(&["sample", "--month", "2026-10"], out);
    let again: Vec<String> = read_table(out, "samples").iter().map(|s| s["call_id"].to_string()).collect();
    assert_eq!(again, samples.iter().map(|s| s["call_id"].to_string()).collect::<Vec<_>>());
    // A month without calls is a clear error.
    let none = callqa_bin().args(["sample", "--month", "2025-01", "--out"]).arg(out).output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no calls for 2025-01"));

    // Report without human verdicts: rates and scores, no estimate yet.
    callqa(&["report", "--month", "2026-10"], out);
    let rows = read_table(out, "agent_month");
    let agent = |id: &str| {
        rows.iter().find(|r| r["agent_id"] == id).unwrap_or_else(|| panic!("{id} missing: {rows:?}")).clone()
    };
    assert_eq!(agent("A1")["calls"], 2);
    assert_eq!(agent("ALL")["calls"], 4);
    assert!(agent("A2")["required_missing_rate"].as_f64().unwrap() >= 0.5);
    assert!(agent("ALL").get("fail_rate_est").is_none_or(serde_json::Value::is_null));

    // Human verdicts arrive, as a QA form export with a column per rule: evaluators confirm
    // the first automatic flag of each call and reject the others.
    let events = read_table(out, "events");
    let flags_of = |id: &str| -> Vec<String> {
        let mut flags: Vec<String> = events
            .iter()
            .filter(|e| e["call_id"] == id)
            .filter_map(|e| e.get("rule_id").and_then(|r| r.as_str()).map(String::from))
            .collect();
        flags.sort();
        flags.dedup();
        flags
    };
    let ids = ["A1-1", "A1-2", "A2-1", "A2-2"];
    let mut rules: Vec<String> = ids.iter().flat_map(|id| flags_of(id)).collect();
    rules.sort();
    rules.dedup();
    assert!(!rules.is_empty(), "the month has automatic flags");
    let mut csv = format!("call_id,evaluator,evaluated_at,passed,{}\n", rules.join(","));
    for (id, passed) in ids.iter().zip(["true", "true", "true", "false"]) {
        let flags = flags_of(id);
        let cells: Vec<&str> = rules
            .iter()
            .map(|r| match flags.iter().position(|f| f == r) {
                Some(0) => "confirmed",
                Some(_) => "rejected",
                None => "",
            })
            .collect();
        csv.push_str(&format!("{id},李娜,2026-11-02 10:00,{passed},{}\n", cells.join(",")));
    }
    std::fs::create_dir_all(out.join("evaluations")).unwrap();
    std::fs::write(out.join("evaluations/week1.csv"), csv).unwrap();
    // A second look at A2-2 with `callqa evaluate`: every flag confirmed. The latest counts.
    let a22 = flags_of("A2-2");
    let confirmed = a22.join(",");
    callqa(&["evaluate", "--call", "A2-2", "--passed", "false", "--evaluator", "王芳", "--confirmed", &confirmed], out);
    let stdout = callqa(&["report", "--month", "2026-10"], out);
    assert!(stdout.contains("rules with human verdicts"), "{stdout}");
    let all = read_table(out, "agent_month").into_iter().find(|r| r["agent_id"] == "ALL").unwrap();
    let (est, low, high) = (
        all["fail_rate_est"].as_f64().unwrap(),
        all["fail_rate_low"].as_f64().unwrap(),
        all["fail_rate_high"].as_f64().unwrap(),
    );
    assert!(low <= est && est <= high && est > 0.0 && est < 1.0, "{low} {est} {high}");
    assert!(all.contains_key("holds_per_call") && all.contains_key("agent_raised_voice_rate"));
    assert!(out.join("evaluations/_drop/week1.csv").exists(), "the drop folder keeps the CSVs out of the table");
    let evaluations = read_table(out, "evaluations");
    assert_eq!(evaluations.len(), 5, "{evaluations:?}");
    // Every sampled call was drawn with probability 1 (fewer calls than the per-agent minimum),
    // so each rule's precision is its plain share of confirmed flags.
    let agreement = read_table(out, "rule_agreement");
    for rule in &rules {
        let row = agreement.iter().find(|r| r["rule_id"] == rule.as_str()).unwrap_or_else(|| panic!("{rule}"));
        let flagged: Vec<&&str> = ids.iter().filter(|id| flags_of(id).contains(rule)).collect();
        let confirmed =
            flagged.iter().filter(|id| ***id == "A2-2" || flags_of(id).first() == Some(rule)).count() as i64;
        assert_eq!(row["evaluated"].as_i64().unwrap(), flagged.len() as i64, "{rule}");
        assert_eq!(row["confirmed"].as_i64().unwrap(), confirmed, "{rule}");
        let precision = row["precision_est"].as_f64().unwrap();
        assert!((precision - confirmed as f64 / flagged.len() as f64).abs() < 1e-9, "{rule}: {precision}");
        assert!(
            row["precision_low"].as_f64().unwrap() <= precision && precision <= row["precision_high"].as_f64().unwrap()
        );
    }
    // A real client reads the new tables: the drop folder is no part of them.
    let check = Command::new(python())
        .arg("-c")
        .arg(
            "import sys, pyarrow.dataset as ds, duckdb\n\
             t = ds.dataset(sys.argv[1] + '/evaluations', format='parquet').to_table()\n\
             assert t.num_rows == 5 and str(t.schema.field('confirmed').type) == 'list<item: string>', t.schema\n\
             n = duckdb.sql(f\"SELECT count(*) FROM read_parquet('{sys.argv[1]}/rule_agreement/**/*.parquet', hive_partitioning = true) WHERE month = '2026-10'\").fetchall()[0][0]\n\
             assert n > 0\n",
        )
        .arg(out)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // A Spark job (PySpark, local mode) reads every table without a schema or a cast:
    // call_date is a date, and a filter on it prunes partitions.
    let spark = Command::new(python()).arg(repo().join("tests/interop/read_spark.py")).arg(out).output().unwrap();
    assert!(spark.status.success(), "{}", String::from_utf8_lossy(&spark.stderr));
    let stdout = String::from_utf8_lossy(&spark.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    for table in [
        "calls",
        "utterances",
        "speech",
        "events",
        "failures",
        "runs",
        "samples",
        "agent_month",
        "evaluations",
        "rule_agreement",
    ] {
        let rows = report["tables"][table]["rows"].as_u64().unwrap_or_else(|| panic!("Spark did not read {table}"));
        assert_eq!(rows as usize, read_table(out, table).len(), "{table}");
    }
    let types = |table: &str, column: &str| report["tables"][table]["types"][column].as_str().unwrap_or("").to_string();
    assert_eq!(types("calls", "call_date"), "date");
    assert_eq!(types("events", "call_date"), "date");
    assert_eq!(types("calls", "processed_at"), "timestamp");
    assert_eq!(types("evaluations", "confirmed"), "array<string>");
    assert!(types("utterances", "tokens").starts_with("array<struct<text:string"), "{}", types("utterances", "tokens"));
    let day = report["pruning"]["date"].as_str().unwrap();
    let calls_that_day = read_table(out, "calls").iter().filter(|c| c["call_date"] == day).count();
    assert_eq!(report["pruning"]["rows"].as_u64().unwrap() as usize, calls_that_day);
    assert!(report["pruning"]["partition_filters"].as_str().unwrap().contains("call_date"), "{report}");

    // The page: self-contained, and a real browser renders it.
    let html_path = out.join("reports/qa-2026-10.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    for needle in [
        "Score distribution",
        "Calls to coach",
        "A2-2",
        "Required phrase missing (greeting)",
        "95% interval",
        "Agreement with QA",
        "holds per call",
        "<audio",
    ] {
        assert!(html.contains(needle), "{needle} missing from the report");
    }
    assert!(
        !html.contains("http://")
            && !html.contains("https://")
            && html.split(" src=\"").skip(1).all(|s| s.starts_with("file:///")),
        "the report must not load anything from the network"
    );
    let shots = tempfile::tempdir().unwrap();
    let png = shots.path().join("report.png");
    let browser = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", shots.path().join("profile").display()))
            .args(extra)
            .arg(format!("file://{}", html_path.display()))
            .output()
            .expect("chromium (scripts/setup.sh --test installs it)")
    };
    browser(&["--window-size=1200,1000", &format!("--screenshot={}", png.display())]);
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot of {size} bytes");
    let dom = String::from_utf8_lossy(&browser(&["--dump-dom"]).stdout).into_owned();
    assert!(
        dom.contains("Calls to coach") && dom.contains("<svg id=\"scores\""),
        "rendered DOM: {}",
        &dom[..dom.len().min(300)]
    );
    // Clicking a moment seeks its call's recording to that moment (the page's #moment= link
    // clicks it on load; the script notes where the audio element went).
    let first = html.split("class=\"seek\" id=\"").nth(1).expect("a moment to click");
    let (moment, rest) = first.split_once('"').unwrap();
    let (audio, t) = {
        let audio = rest.split("data-audio=\"").nth(1).unwrap().split('"').next().unwrap();
        let t: f64 = rest.split("data-t=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        (audio.to_string(), t)
    };
    let clicked = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .arg(format!("--user-data-dir={}", shots.path().join("profile2").display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}#moment={moment}", html_path.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&clicked.stdout);
    let seeked = dom.split("data-seeked=\"").nth(1).map(|s| s.split('"').next().unwrap().to_string());
    let seeked = seeked.unwrap_or_else(|| panic!("no seek after clicking {moment}: {}", &dom[..dom.len().min(400)]));
    let (seeked_audio, seeked_t) = seeked.split_once('@').unwrap();
    assert_eq!(seeked_audio, audio);
    assert!((seeked_t.parse::<f64>().unwrap() - t).abs() < 0.05, "seeked to {seeked_t}, moment at {t}");

    // The notebook a QA manager runs, executed end to end on this output.
    let python = python();
    let executed = shots.path().join("executed.ipynb");
    let nb = Command::new(&python)
        .args(["-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output"])
        .arg(&executed)
        .arg(repo().join("examples/qa_month.ipynb"))
        .env("CALLQA_OUT", out)
        .env("CALLQA_MONTH", "2026-10")
        .current_dir(shots.path())
        .output()
        .unwrap();
    assert!(nb.status.success(), "notebook failed: {}", String::from_utf8_lossy(&nb.stderr));
    let text = std::fs::read_to_string(&executed).unwrap();
    assert!(text.contains("A2-2") && text.contains("listen_at"), "notebook output lacks the calls to coach");
    // Score distribution, agents with intervals, daily trends, loudness and agreement are drawn.
    let plots = text.matches("image/png").count();
    assert!(plots >= 5, "the notebook drew {plots} plots");
}
