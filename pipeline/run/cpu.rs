//! How many threads a Whisper call gets: never more than the cores other processes leave free.
//!
//! ggml's worker threads meet at a spinning barrier after every operation; when another
//! process holds a core, one of two threads is descheduled and the other spins, and a call
//! ran 20x slower than on one thread (measured, README). So before each call the scheduler
//! reads how busy the machine was since the last look (`/proc/stat`), subtracts what this
//! process and its workers used (`/proc/<pid>/stat`), and gives each job its share of the
//! cores that are left, at least one thread and at most the configured number. It is asked
//! before every decode window, at most every [`MIN_INTERVAL`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Busy clock ticks: the whole machine's and this process tree's.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    machine_busy: u64,
    ours: u64,
}

#[derive(Debug)]
pub struct CpuShare {
    cores: usize,
    jobs: usize,
    max_threads: u32,
    adapt: bool,
    state: Mutex<(Option<Sample>, u32)>,
}

/// Look again at most this often; between looks the last answer stands.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

impl CpuShare {
    /// Looks at the machine now, so the first answer already knows what others used since
    /// (shards started side by side on one machine would otherwise both take every core).
    pub fn new(cores: usize, jobs: usize, max_threads: u32) -> CpuShare {
        CpuShare {
            cores: cores.max(1),
            jobs: jobs.max(1),
            max_threads: max_threads.max(1),
            adapt: true,
            state: Mutex::new((sample(), max_threads.max(1))),
        }
    }

    /// The same number of threads every time.
    pub fn fixed(threads: u32) -> CpuShare {
        CpuShare {
            cores: 1,
            jobs: 1,
            max_threads: threads.max(1),
            adapt: false,
            state: Mutex::new((None, threads.max(1))),
        }
    }

    /// Threads for the next Whisper call.
    pub fn threads(&self) -> u32 {
        if !self.adapt {
            return self.max_threads;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(now) = sample() else {
            return self.max_threads;
        };
        match state.0 {
            Some(last) if now.at.duration_since(last.at) < MIN_INTERVAL => state.1,
            Some(last) => {
                let seconds = now.at.duration_since(last.at).as_secs_f64();
                let ticks = ticks_per_second();
                let machine = now.machine_busy.saturating_sub(last.machine_busy) as f64 / ticks / seconds;
                let ours = now.ours.saturating_sub(last.ours) as f64 / ticks / seconds;
                let threads = threads_for(self.cores, self.jobs, self.max_threads, (machine - ours).max(0.0));
                *state = (Some(now), threads);
                threads
            }
            None => {
                *state = (Some(now), self.max_threads);
                self.max_threads
            }
        }
    }
}

/// ASR jobs when `--jobs` is not given. On a CPU, one: its threads take every core. On a GPU,
/// one worker leaves it four-fifths idle (the host side of each decoder step runs between
/// its kernels), and 8 decoded 2.7x as fast as one on an H100, 16 no faster (README,
/// Throughput, On a GPU): half the cores, as each worker's host side needs about one, up to 8.
pub fn default_jobs(on_gpu: bool, cores: usize) -> usize {
    if on_gpu {
        (cores / 2).clamp(1, 8)
    } else {
        1
    }
}

/// Each job's share of the cores others leave free, rounded, between 1 and `max_threads`.
pub fn threads_for(cores: usize, jobs: usize, max_threads: u32, others_busy_cores: f64) -> u32 {
    let free = (cores as f64 - others_busy_cores).max(0.0);
    ((free / jobs as f64).round() as u32).clamp(1, max_threads)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let machine_busy = fields.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4 && *i < 8).map(|(_, v)| v).sum();
    let me = std::process::id();
    let mut ours = process_ticks(me).map_or(0, |(ticks, _)| ticks);
    for entry in std::fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((ticks, parent)) = process_ticks(pid) {
            if parent == me {
                ours += ticks;
            }
        }
    }
    Some(Sample { at: Instant::now(), machine_busy, ours })
}

/// utime + stime of a process, and its parent's pid.
fn process_ticks(pid: u32) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let parent = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((utime + stime, parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_on_a_cpu_and_half_the_cores_up_to_8_on_a_gpu() {
        assert_eq!(default_jobs(false, 16), 1);
        assert_eq!(default_jobs(true, 16), 8);
        assert_eq!(default_jobs(true, 64), 8);
        assert_eq!(default_jobs(true, 6), 3);
        assert_eq!(default_jobs(true, 1), 1);
    }

    #[test]
    fn threads_follow_the_cores_others_leave_free() {
        assert_eq!(threads_for(2, 1, 2, 0.0), 2);
        assert_eq!(threads_for(2, 1, 2, 0.9), 1, "one core busy elsewhere: no spinning on it");
        assert_eq!(threads_for(2, 1, 2, 2.0), 1, "a saturated machine still gets one thread");
        assert_eq!(threads_for(16, 2, 8, 4.0), 6);
        assert_eq!(threads_for(16, 1, 4, 0.0), 4, "never more than configured");
        let fixed = CpuShare::fixed(2);
        assert_eq!((fixed.threads(), fixed.threads()), (2, 2), "asr.adapt_threads = false");
    }

    #[test]
    fn this_process_is_found_in_proc() {
        let (ticks, parent) = process_ticks(std::process::id()).unwrap();
        assert!(parent > 0);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(200) {}
        assert!(process_ticks(std::process::id()).unwrap().0 > ticks);
        assert!(sample().is_some());
    }
}
