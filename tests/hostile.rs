//! Hostile inputs (issue 13): a folder of every broken, lying or odd file a recording store
//! can hold, beside good calls. Each bad file gets one clear line naming it and why; the
//! good ones (including valid oddities: pad bytes, extensible headers, streaming sizes,
//! 96 kHz, odd names) are written; nothing hangs and nothing is left half-written. A
//! manifest with impossible dates is refused row by row, and DuckDB still types
//! `call_date` as a date.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// A WAV file from its parts; sizes may lie.
struct Wav {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    /// Extensible header with this sub-format tag.
    extensible: Option<u16>,
    /// Chunks before `data` (id, body); odd bodies get their pad byte.
    chunks: Vec<([u8; 4], Vec<u8>)>,
    data: Vec<u8>,
    data_size: Option<u32>,
    riff_size: Option<u32>,
    /// `data` before `fmt `.
    late_fmt: bool,
    no_fmt: bool,
}

impl Wav {
    fn pcm16(rate: u32, channels: u16, seconds: f64) -> Wav {
        let frames = (rate as f64 * seconds) as usize;
        let mut data = Vec::with_capacity(frames * channels as usize * 2);
        for i in 0..frames {
            for c in 0..channels {
                let s = ((i as f64 * (0.05 + 0.02 * c as f64)).sin() * 8000.0) as i16;
                data.extend_from_slice(&s.to_le_bytes());
            }
        }
        Wav {
            tag: 1,
            channels,
            rate,
            bits: 16,
            extensible: None,
            chunks: vec![],
            data,
            data_size: None,
            riff_size: None,
            late_fmt: false,
            no_fmt: false,
        }
    }

    fn float(values: &[f32]) -> Wav {
        Wav {
            tag: 3,
            bits: 32,
            channels: 1,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Wav::pcm16(8000, 1, 0.0)
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let block = self.channels as u32 * (self.bits as u32).div_ceil(8);
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&self.extensible.map_or(self.tag, |_| 0xFFFE).to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.rate.to_le_bytes());
        fmt.extend_from_slice(&(self.rate * block).to_le_bytes());
        fmt.extend_from_slice(&(block as u16).to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if let Some(sub) = self.extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&self.bits.to_le_bytes());
            fmt.extend_from_slice(&(if self.channels == 2 { 3u32 } else { 4u32 }).to_le_bytes());
            fmt.extend_from_slice(&sub.to_le_bytes());
            fmt.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
        }
        let chunk = |id: &[u8], body: &[u8], size: Option<u32>| {
            let mut c = id.to_vec();
            c.extend_from_slice(&size.unwrap_or(body.len() as u32).to_le_bytes());
            c.extend_from_slice(body);
            if body.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        let fmt_chunk = if self.no_fmt { vec![] } else { chunk(b"fmt ", &fmt, None) };
        let data_chunk = chunk(b"data", &self.data, self.data_size);
        let mut body = b"WAVE".to_vec();
        if !self.late_fmt {
            body.extend(&fmt_chunk);
        }
        for (id, b) in &self.chunks {
            body.extend(chunk(id, b, None));
        }
        body.extend(&data_chunk);
        if self.late_fmt {
            body.extend(&fmt_chunk);
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&self.riff_size.unwrap_or(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }
}

/// (file name, bytes, the error_type it must fail with; None = a valid recording)
fn hostile_files() -> Vec<(PathBuf, Vec<u8>, Option<&'static str>)> {
    let good = Wav::pcm16(8000, 2, 3.0).bytes();
    let mut random = vec![0u8; 10_000];
    let mut x: u32 = 12345;
    for b in random.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let mut mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a".to_vec();
    mp3.extend(std::iter::repeat_n([0xFF, 0xFB, 0x90, 0x64], 500).flatten());
    let streaming = Wav { data_size: Some(u32::MAX), riff_size: Some(u32::MAX), ..Wav::pcm16(8000, 2, 3.0) };
    let lying = Wav { data_size: Some(10_000_000), ..Wav::pcm16(8000, 2, 3.0) };
    let padded =
        Wav { chunks: vec![(*b"LIST", b"INFOx".to_vec()), (*b"junk", vec![1, 2, 3])], ..Wav::pcm16(8000, 2, 3.0) };
    let long_name = format!("{}.wav", "long-name-".repeat(24));
    let non_utf8 = PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9-call.wav"));
    let files: Vec<(PathBuf, Vec<u8>, Option<&'static str>)> = vec![
        ("good.wav".into(), good.clone(), None),
        ("zero_length.wav".into(), vec![], Some("empty")),
        ("truncated.wav".into(), good[..good.len() / 3].to_vec(), Some("corrupt")),
        ("lying_data_size.wav".into(), lying.bytes(), Some("corrupt")),
        ("streaming_sizes_ffffffff.wav".into(), streaming.bytes(), None),
        ("no_fmt.wav".into(), Wav { no_fmt: true, ..Wav::pcm16(8000, 1, 1.0) }.bytes(), Some("corrupt")),
        ("late_fmt.wav".into(), Wav { late_fmt: true, ..Wav::pcm16(8000, 1, 1.0) }.bytes(), Some("corrupt")),
        ("extensible_pcm.wav".into(), Wav { extensible: Some(1), ..Wav::pcm16(16000, 2, 2.0) }.bytes(), None),
        (
            "extensible_mulaw.wav".into(),
            Wav { extensible: Some(7), bits: 8, data: vec![0x55; 16000], ..Wav::pcm16(8000, 1, 0.0) }.bytes(),
            None,
        ),
        ("odd_chunks_with_pad_bytes.wav".into(), padded.bytes(), None),
        ("rate_1hz.wav".into(), Wav { rate: 1, ..Wav::pcm16(8000, 1, 1.0) }.bytes(), Some("unsupported_format")),
        ("rate_0hz.wav".into(), Wav { rate: 0, ..Wav::pcm16(8000, 1, 1.0) }.bytes(), Some("unsupported_format")),
        ("rate_96khz.wav".into(), Wav::pcm16(96_000, 2, 2.0).bytes(), None),
        ("channels_0.wav".into(), Wav { channels: 0, ..Wav::pcm16(8000, 1, 1.0) }.bytes(), Some("unsupported_format")),
        ("channels_6.wav".into(), Wav::pcm16(8000, 6, 1.0).bytes(), Some("unsupported_format")),
        ("bits_0.wav".into(), Wav { bits: 0, ..Wav::pcm16(8000, 1, 1.0) }.bytes(), Some("corrupt")),
        ("bits_13.wav".into(), Wav { bits: 13, ..Wav::pcm16(8000, 1, 1.0) }.bytes(), Some("unsupported_format")),
        ("adpcm.wav".into(), Wav { tag: 2, bits: 4, ..Wav::pcm16(8000, 1, 1.0) }.bytes(), Some("unsupported_format")),
        ("mp3_bytes.wav".into(), mp3, Some("not_wav")),
        ("random_bytes.wav".into(), random, Some("not_wav")),
        ("nan_floats.wav".into(), Wav::float(&[0.1, f32::NAN, 0.2].repeat(3000)).bytes(), Some("invalid_samples")),
        ("inf_floats.wav".into(), Wav::float(&[0.1, f32::INFINITY].repeat(4000)).bytes(), Some("invalid_samples")),
        (long_name.into(), good.clone(), None),
        (non_utf8, good.clone(), None),
        // A folder named like a recording is walked into, not read: its call is found.
        ("folder.wav/inside.wav".into(), good, None),
    ];
    files
}

fn run_with_deadline(mut command: std::process::Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            return (status.code(), String::from_utf8_lossy(&output.stderr).to_string());
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("callqa hung on hostile input ({limit:?})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn leftovers(out: &Path) -> Vec<String> {
    walkdir::WalkDir::new(out)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp") || n.contains("probe"))
        .collect()
}

#[test]
fn every_hostile_file_gets_one_clear_line_and_the_good_calls_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let files = hostile_files();
    for (name, bytes, _) in &files {
        let path = input.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    }
    std::os::unix::fs::symlink("loop", input.join("loop")).unwrap();
    std::os::unix::fs::symlink("..", input.join("parent_loop")).unwrap();
    let fifo = input.join("fifo.wav");
    assert_eq!(
        unsafe { libc::mkfifo(std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap().as_ptr(), 0o600) },
        0
    );
    let out = dir.path().join("out");
    let mut command = callqa_bin();
    command.args(["run", "--no-asr", "--input"]).arg(&input).arg("--out").arg(&out);
    let (code, stderr) = run_with_deadline(command, Duration::from_secs(120));
    assert_eq!(code, Some(1), "{stderr}");
    println!("{stderr}");

    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("failed: ")).collect();
    let failures = read_table(&out, "failures");
    let by_path: BTreeMap<String, String> = failures
        .iter()
        .map(|r| (r["source_path"].as_str().unwrap().to_string(), r["error_type"].as_str().unwrap().to_string()))
        .collect();
    let mut expected_failures = 0;
    for (name, _, expected) in &files {
        let path = input.join(name).display().to_string();
        let mentions = lines.iter().filter(|l| l.contains(&path)).count();
        match expected {
            Some(error_type) => {
                expected_failures += 1;
                assert_eq!(mentions, 1, "{path}: one line expected in\n{stderr}");
                assert_eq!(by_path.get(&path).map(String::as_str), Some(*error_type), "{path}: {by_path:?}");
            }
            None => assert_eq!(mentions, 0, "{path} is valid but failed:\n{stderr}"),
        }
    }
    let fifo = fifo.display().to_string();
    assert_eq!(lines.iter().filter(|l| l.contains(&fifo)).count(), 1, "{stderr}");
    assert_eq!(by_path.get(&fifo).map(String::as_str), Some("not_regular_file"));
    assert!(lines.iter().any(|l| l.contains("symlink loop")), "{stderr}");
    // Every line says what is wrong in words, not only a code.
    for line in &lines {
        assert!(line.len() > 40 && line.contains(": "), "{line}");
    }
    assert!(lines.len() >= expected_failures + 2, "{stderr}");

    let calls = read_table(&out, "calls");
    let good = files.iter().filter(|f| f.2.is_none()).count();
    assert_eq!(calls.len(), good, "{calls:?}");
    let rates: Vec<i64> = calls.iter().map(|c| c["sample_rate_hz"].as_i64().unwrap()).collect();
    assert!(rates.contains(&96_000) && rates.contains(&16_000));
    let streaming = calls.iter().find(|c| c["call_id"] == "streaming_sizes_ffffffff").unwrap();
    assert!((streaming["duration_s"].as_f64().unwrap() - 3.0).abs() < 0.01, "{streaming:?}");
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}

#[test]
fn a_fifo_given_as_the_manifest_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("calls.csv");
    assert_eq!(
        unsafe { libc::mkfifo(std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap().as_ptr(), 0o600) },
        0
    );
    let mut command = callqa_bin();
    command.args(["run", "--no-asr", "--input"]).arg(&fifo).arg("--out").arg(dir.path().join("out"));
    let (code, stderr) = run_with_deadline(command, Duration::from_secs(30));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("calls.csv") && stderr.contains("not a regular file (a FIFO)"), "{stderr}");
}

#[test]
fn impossible_dates_are_refused_and_call_date_stays_a_date() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.wav");
    std::fs::write(&good, Wav::pcm16(8000, 2, 2.0).bytes()).unwrap();
    let manifest = dir.path().join("calls.csv");
    std::fs::write(
        &manifest,
        format!(
            "path,call_id,started_at\n\
             {0},future_offset,9999-12-31T23:30:00-05:00\n\
             {0},future,2999-01-01T00:00:00Z\n\
             {0},ancient,1900-01-01T00:00:00+08:00\n\
             {0},fine,2026-11-20T09:00:00+08:00\n",
            good.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let output =
        callqa_bin().args(["run", "--no-asr", "--input"]).arg(&manifest).arg("--out").arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for id in ["future_offset", "future", "ancient"] {
        let line =
            stderr.lines().find(|l| l.starts_with(&format!("failed: {id} "))).unwrap_or_else(|| panic!("{stderr}"));
        assert!(line.contains("started_at") && line.contains("clock"), "{line}");
    }
    let folders: Vec<String> = std::fs::read_dir(out.join("calls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(folders, ["call_date=2026-11-20"]);
    let script = r#"
import sys, duckdb
t = duckdb.sql(f"select typeof(call_date) as t, count(*) as n from read_parquet('{sys.argv[1]}/calls/*/*.parquet', hive_partitioning=true) group by 1").fetchall()
print(t)
"#;
    let typed = std::process::Command::new(python()).arg("-c").arg(script).arg(&out).output().unwrap();
    assert!(typed.status.success(), "{}", String::from_utf8_lossy(&typed.stderr));
    assert_eq!(String::from_utf8_lossy(&typed.stdout).trim(), "[('DATE', 1)]");
}
