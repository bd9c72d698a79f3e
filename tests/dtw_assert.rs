//! The batch in which whisper.cpp's DTW median filter asserted (`filter_width < a->ne[2]`)
//! on the 19th call (found by scripts/sweep-dtw.py, seed 2; README, Durable runs). The assert
//! depends on what the worker decoded before (temperature fallback's random numbers) and on
//! the thread count, so the whole batch runs in one worker, in the order it was found in, on
//! two threads whatever the machine's load. Before durable runs it killed the
//! process and every result with it; now the window is decoded again without DTW and every
//! call lands. Its own test binary, so nothing else slows it down.

mod common;

use common::*;

#[test]
fn the_batch_that_aborted_in_dtw_completes_with_the_window_decoded_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    std::fs::create_dir_all(&input).unwrap();
    let specs = repo().join("fixtures/specs/dtw_assert");
    let mut names: Vec<_> = std::fs::read_dir(&specs).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    assert_eq!(names.len(), 19);
    for spec in &names {
        let spec_text = std::fs::read_to_string(spec).unwrap();
        let call: callqa::assemble::CallSpec = toml::from_str(&spec_text).unwrap();
        let (wav, _) = callqa::assemble::assemble(&call, &corpus("")).unwrap();
        std::fs::write(input.join(spec.with_extension("wav").file_name().unwrap()), wav).unwrap();
    }
    // The order the batch ran in when the assert was found (c003 before c002), as a manifest:
    // calls reach the worker in input order, and the assert depends on what came before.
    let order =
        ["c000", "c001", "c003", "c002"].into_iter().map(String::from).chain((4..19).map(|i| format!("c{i:03}")));
    let manifest = dir.path().join("manifest.csv");
    let rows: String = order.map(|id| format!("calls/{id}.wav,{id}\n")).collect();
    std::fs::write(&manifest, format!("path,call_id\n{rows}")).unwrap();
    let out = dir.path().join("out");
    let stats = dir.path().join("stats.json");
    let config = dir.path().join("threads.toml");
    // Two threads whatever else the machine does: the thread count changes what Whisper decodes.
    // Detection as when the case was found (whisper.cpp's own, over every language): the
    // restricted detection of asr.languages runs its own encoder pass first, which changes
    // the state the assert depends on; detection on every window. Loops run to whisper.cpp's
    // token limit, as they did then (ending them early changes what is decoded after).
    std::fs::write(
        &config,
        "[asr]\nthreads = 2\nadapt_threads = false\nlanguages = []\nlanguage_per_window = true\nstop_loops = false\n",
    )
    .unwrap();
    let output = callqa_bin()
        .args(["run", "--input"])
        .arg(&manifest)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&config)
        .arg("--stats")
        .arg(&stats)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("calls: 19 ok, 0 failed"));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert!(
        summary["dtw_fallbacks"].as_u64().unwrap() >= 1,
        "whisper.cpp no longer asserts on this batch (see scripts/sweep-dtw.py for a new case): {summary}"
    );
    assert!(stderr.contains("filter_width < a->ne[2]"), "the reason names the assert: {stderr}");
    let utterances = read_table(&out, "utterances");
    assert!(utterances.iter().any(|u| u["call_id"] == "c018"), "the call with the fallback window has words");
}
