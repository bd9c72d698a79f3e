//! Supervised transcription: windows of audio -> a worker process -> [`RawWindow`]s.
//!
//! whisper.cpp is native code: an `assert` (`WHISPER_ASSERT`, e.g. in DTW token timing),
//! a segfault on degenerate input or the kernel's out-of-memory killer ends the process it
//! runs in, and `catch_unwind` never sees it. So a batch never calls whisper.cpp itself:
//! each ASR job owns a [`WorkerProcess`], the same binary started as `callqa worker`,
//! which loads the model once and decodes one window per request.
//!
//! Protocol (stdin/stdout of the worker; every frame is a little-endian `u32` length and
//! that many bytes): the parent sends the run's [`AsrSettings`] as JSON; the worker answers
//! [`Handshake`]. Then per window the parent sends [`DecodeParams`] as JSON and the audio
//! as raw little-endian `f32`, and the worker answers `Result<RawWindow, String>` as JSON.
//! The worker exits when its stdin closes, and is killed with its parent (`PR_SET_PDEATHSIG`).
//!
//! When the worker dies during a window, [`WorkerProcess`] says how (signal, and the last
//! thing whisper.cpp printed) and starts a new one for the next request. A window that
//! killed the worker with DTW timing on is decoded once more without it (whisper.cpp's own
//! token times for that window): DTW's median filter asserts when a segment ends within
//! 0.14 s of the window position it was decoded from (`filter_width < a->ne[2]`), which no
//! input check can rule out beforehand. A request past the call's deadline kills the worker.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::{AsrError, AsrSettings, DecodeParams, RawWindow, Transcriber, WindowDecoder};

/// The worker's first answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Handshake {
    /// The model is loaded, on this GPU ([`super::gpu_device`]) or on the CPU (`None`).
    Ready {
        gpu: Option<String>,
    },
    Failed(String),
}

/// How long a worker may take to load its model.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);
/// Lines of the worker's stderr kept to explain its death.
const STDERR_LINES: usize = 30;

fn write_frame(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("frame over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// The next frame; `None` at a clean end of stream.
fn read_frame(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

fn write_json(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    write_frame(out, &serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    out.flush()
}

fn audio_bytes(audio: &[f32]) -> Vec<u8> {
    audio.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn audio_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
}

/// The worker side (`callqa worker --model FILE`): serve windows until stdin closes.
pub fn serve(model: &Path) -> Result<(), AsrError> {
    let protocol_error = |e: std::io::Error| AsrError::Worker(format!("protocol: {e}"));
    // SAFETY: plain libc calls on this process's own descriptors and attributes. The protocol
    // moves to a private descriptor and stdout becomes stderr, so nothing native code prints
    // can corrupt a frame; the kernel kills this worker when its parent dies.
    let protocol_out = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return Err(AsrError::Worker("cannot set up the protocol descriptor".into()));
        }
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
    };
    let mut output = BufWriter::new(protocol_out);
    let mut input = BufReader::new(std::io::stdin().lock());
    let settings: AsrSettings = match read_frame(&mut input).map_err(protocol_error)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| AsrError::Worker(format!("settings: {e}")))?,
        None => return Ok(()),
    };
    let transcriber = match Transcriber::load(model, settings) {
        Ok(t) => t,
        Err(e) => {
            write_json(&mut output, &Handshake::Failed(e.to_string())).map_err(protocol_error)?;
            return Err(e);
        }
    };
    let gpu = super::gpu_device(&transcriber.settings);
    let mut worker = transcriber.worker(1)?;
    write_json(&mut output, &Handshake::Ready { gpu }).map_err(protocol_error)?;
    while let Some(header) = read_frame(&mut input).map_err(protocol_error)? {
        let params: DecodeParams =
            serde_json::from_slice(&header).map_err(|e| AsrError::Worker(format!("request: {e}")))?;
        let audio = audio_from_bytes(&read_frame(&mut input).map_err(protocol_error)?.unwrap_or_default());
        #[cfg(feature = "test-hooks")]
        fault::inject(&params);
        let result = worker.decode(&params, &audio).map_err(|e| e.to_string());
        write_json(&mut output, &result).map_err(protocol_error)?;
    }
    Ok(())
}

/// Test builds only: `CALLQA_TEST_FAULT="abort:CALL,segv:CALL,hang:CALL,dtw-abort:CALL,dtw-assert:CALL"`
/// makes the worker fail that way on every window of that call (`dtw-abort` and
/// `dtw-assert`: only on windows decoded with DTW timing). `dtw-assert` makes whisper.cpp
/// itself abort, in its DTW median filter, as it did on a real call: the decoder is made to
/// end its pass with a segment too short for the filter ([`short_segment`]).
#[cfg(feature = "test-hooks")]
pub(crate) mod fault {
    use std::os::raw::{c_int, c_void};
    use std::sync::atomic::{AtomicBool, Ordering};

    use whisper_rs::whisper_rs_sys::{
        whisper_context, whisper_n_vocab, whisper_state, whisper_token_beg, whisper_token_data, whisper_token_eot,
        whisper_tokenize,
    };

    /// Set for a window of a `dtw-assert` call; the worker then decodes with [`short_segment`].
    pub static SHORT_SEGMENT: AtomicBool = AtomicBool::new(false);

    /// A logits filter that leaves one choice per step: `<|0.00|> hello <|0.12|>` and the end.
    /// whisper.cpp then runs DTW over 12 frames, fewer than its median filter's width of 7
    /// audio tokens (14 frames) needs, and aborts on `filter_width < a->ne[2]`.
    ///
    /// # Safety
    /// Called by whisper.cpp with its context, `n_tokens` valid tokens and `n_vocab` logits.
    pub unsafe extern "C" fn short_segment(
        ctx: *mut whisper_context,
        _state: *mut whisper_state,
        _tokens: *const whisper_token_data,
        n_tokens: c_int,
        logits: *mut f32,
        _user_data: *mut c_void,
    ) {
        let mut hello = [0; 4];
        let found = whisper_tokenize(ctx, c"hello".as_ptr(), hello.as_mut_ptr(), hello.len() as c_int);
        let next = match n_tokens {
            0 => whisper_token_beg(ctx),
            1 if found > 0 => hello[0],
            2 => whisper_token_beg(ctx) + 6,
            _ => whisper_token_eot(ctx),
        };
        let logits = std::slice::from_raw_parts_mut(logits, whisper_n_vocab(ctx) as usize);
        for (id, logit) in logits.iter_mut().enumerate() {
            if id as i32 != next {
                *logit = f32::NEG_INFINITY;
            }
        }
    }

    pub fn inject(params: &super::DecodeParams) {
        SHORT_SEGMENT.store(false, Ordering::Relaxed);
        let Ok(spec) = std::env::var("CALLQA_TEST_FAULT") else {
            return;
        };
        for item in spec.split(',') {
            let Some((kind, call_id)) = item.split_once(':') else {
                continue;
            };
            if call_id != params.call_id {
                continue;
            }
            match kind {
                "abort" => std::process::abort(),
                "dtw-abort" if params.dtw => std::process::abort(),
                "dtw-assert" if params.dtw => SHORT_SEGMENT.store(true, Ordering::Relaxed),
                // SAFETY: deliberately not safe: a real invalid write, so the kernel delivers
                // the same SIGSEGV a crash in native code would.
                "segv" => unsafe { std::ptr::null_mut::<u64>().write_volatile(1) },
                "hang" => loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                },
                _ => {}
            }
        }
    }
}

/// A running worker process.
struct Live {
    child: Child,
    /// Where the worker decodes ([`Handshake::Ready`]).
    gpu: Option<String>,
    stdin: BufWriter<ChildStdin>,
    frames: Receiver<Vec<u8>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Live {
    fn start(exe: &Path, model: &Path, settings: &AsrSettings) -> Result<Live, AsrError> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(exe)
            .arg0("callqa")
            .args(["worker", "--model"])
            .arg(model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| AsrError::Worker(format!("cannot start {} worker: {e}", exe.display())))?;
        let mut stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (sender, frames) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            while let Ok(Some(frame)) = read_frame(&mut stdout) {
                if sender.send(frame).is_err() {
                    break;
                }
            }
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                debug!(target: "callqa::worker", pid, "{line}");
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        let stdin = BufWriter::new(child.stdin.take().expect("piped"));
        let mut live = Live { child, gpu: None, stdin, frames, stderr_tail };
        write_json(&mut live.stdin, settings).map_err(|e| live.died(&format!("sending settings: {e}")))?;
        let answer = match live.frames.recv_timeout(STARTUP_TIMEOUT) {
            Ok(frame) => serde_json::from_slice::<Handshake>(&frame)
                .map_err(|e| AsrError::Worker(format!("bad handshake: {e}")))?,
            Err(_) => return Err(live.died("while loading the model")),
        };
        match answer {
            Handshake::Ready { gpu } => {
                live.gpu = gpu;
                Ok(live)
            }
            Handshake::Failed(reason) => Err(AsrError::Worker(reason)),
        }
    }

    /// Reap a worker that stopped answering and say how it ended.
    fn died(&mut self, context: &str) -> AsrError {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        // The stderr reader may still be draining the last lines.
        std::thread::sleep(Duration::from_millis(50));
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        const LAST_WORDS: [&str; 4] = ["WHISPER_ASSERT", "GGML_ASSERT", "GGML_ABORT", "panicked"];
        let last_words = tail
            .iter()
            .rev()
            .find_map(|l| LAST_WORDS.iter().find_map(|w| l.find(w)).map(|at| &l[at..]))
            .or_else(|| tail.iter().rev().find(|l| !l.trim().is_empty()).map(String::as_str))
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        AsrError::WorkerDied {
            reason: format!("worker pid {} {} {context}{last_words}", self.child.id(), describe_exit(status)),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Closing stdin ends the worker's loop; kill it if it is stuck in a window.
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// "killed by SIGABRT (abort)", "exited with status 3".
pub fn describe_exit(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return "ended (status unknown)".into();
    };
    match (status.signal(), status.code()) {
        (Some(signal), _) => {
            let name = match signal {
                libc::SIGABRT => "SIGABRT (abort)",
                libc::SIGSEGV => "SIGSEGV (segmentation fault)",
                libc::SIGKILL => "SIGKILL (killed; out of memory?)",
                libc::SIGBUS => "SIGBUS (bus error)",
                libc::SIGFPE => "SIGFPE (arithmetic error)",
                libc::SIGILL => "SIGILL (illegal instruction)",
                libc::SIGTERM => "SIGTERM (terminated)",
                _ => return format!("killed by signal {signal}"),
            };
            format!("killed by {name}")
        }
        (None, Some(code)) => format!("exited with status {code}"),
        (None, None) => "ended".into(),
    }
}

/// A supervised worker process, started on first use and again after it dies.
pub struct WorkerProcess {
    exe: PathBuf,
    model: PathBuf,
    settings: AsrSettings,
    live: Option<Live>,
    deadline: Option<(Instant, f64)>,
    /// Workers started (the first included).
    pub starts: usize,
    /// Windows decoded again without DTW after their DTW pass killed the worker.
    pub dtw_fallbacks: usize,
}

impl WorkerProcess {
    /// `exe` is the callqa binary (usually `/proc/self/exe`).
    pub fn new(exe: PathBuf, model: PathBuf, settings: AsrSettings) -> WorkerProcess {
        WorkerProcess { exe, model, settings, live: None, deadline: None, starts: 0, dtw_fallbacks: 0 }
    }

    /// Start the worker now (to fail early on a model that does not load).
    pub fn ensure_started(&mut self) -> Result<(), AsrError> {
        if self.live.is_none() {
            self.starts += 1;
            self.live = Some(Live::start(&self.exe, &self.model, &self.settings)?);
        }
        Ok(())
    }

    /// The GPU the running worker decodes on; `None` on the CPU or before it starts.
    pub fn gpu(&self) -> Option<&str> {
        self.live.as_ref().and_then(|live| live.gpu.as_deref())
    }

    /// Requests until the next call to this are abandoned (and the worker killed) after
    /// `budget_s` from now; `None` lifts the limit.
    pub fn set_budget(&mut self, budget_s: Option<f64>) {
        self.deadline = budget_s.map(|b| (Instant::now() + Duration::from_secs_f64(b), b));
    }

    fn decode_once(&mut self, params: &DecodeParams, audio: &[f32]) -> Result<RawWindow, AsrError> {
        self.ensure_started()?;
        let live = self.live.as_mut().expect("started above");
        let sent = serde_json::to_vec(params)
            .map_err(std::io::Error::other)
            .and_then(|header| write_frame(&mut live.stdin, &header))
            .and_then(|()| write_frame(&mut live.stdin, &audio_bytes(audio)))
            .and_then(|()| live.stdin.flush());
        let answer = match sent {
            Err(e) => Err(live.died(&format!("(sending a window: {e})"))),
            Ok(()) => {
                let received = match self.deadline {
                    Some((at, _)) => live.frames.recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => live.frames.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(frame) => serde_json::from_slice::<Result<RawWindow, String>>(&frame)
                        .map_err(|e| AsrError::Worker(format!("bad answer: {e}")))
                        .and_then(|r| r.map_err(AsrError::Worker)),
                    Err(RecvTimeoutError::Timeout) => {
                        let budget_s = self.deadline.map_or(0.0, |(_, b)| b);
                        self.live = None;
                        return Err(AsrError::TimeBudget { budget_s });
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        Err(live.died(&format!("while decoding a window of call {}", params.call_id)))
                    }
                }
            }
        };
        if matches!(answer, Err(AsrError::WorkerDied { .. })) {
            self.live = None;
        }
        answer
    }
}

impl WindowDecoder for WorkerProcess {
    fn decode(&mut self, params: &DecodeParams, audio: &[f32]) -> Result<RawWindow, AsrError> {
        match self.decode_once(params, audio) {
            Err(AsrError::WorkerDied { reason }) if params.dtw => {
                warn!(call_id = %params.call_id, %reason, "a window killed the worker with DTW timing on; decoding it again without DTW");
                self.dtw_fallbacks += 1;
                self.decode_once(&DecodeParams { dtw: false, ..params.clone() }, audio)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        write_frame(&mut buf, &audio_bytes(&[0.5, -1.0])).unwrap();
        let mut input = buf.as_slice();
        assert_eq!(read_frame(&mut input).unwrap().unwrap(), b"hello");
        assert_eq!(audio_from_bytes(&read_frame(&mut input).unwrap().unwrap()), vec![0.5, -1.0]);
        assert!(read_frame(&mut input).unwrap().is_none());
        // A frame cut short is an error, not a clean end.
        let mut cut: &[u8] = &buf[..7];
        assert!(read_frame(&mut cut).is_err());
    }

    #[test]
    fn exits_are_named_by_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe_exit(Some(ExitStatus::from_raw(libc::SIGABRT))), "killed by SIGABRT (abort)");
        assert_eq!(describe_exit(Some(ExitStatus::from_raw(libc::SIGSEGV))), "killed by SIGSEGV (segmentation fault)");
        assert_eq!(describe_exit(Some(ExitStatus::from_raw(3 << 8))), "exited with status 3");
    }
}
