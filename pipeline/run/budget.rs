//! Memory in flight: calls between reading and transcription hold a reservation of bytes,
//! so a queue of decoded calls (or one 4-hour 48 kHz file) cannot grow memory with the
//! number of jobs. A call larger than the whole budget waits until it can run alone.

use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug)]
struct State {
    capacity: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

/// A byte budget shared by the scheduler's threads.
#[derive(Debug, Clone)]
pub struct MemoryBudget(Arc<State>);

/// Bytes held until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    bytes: usize,
}

impl MemoryBudget {
    pub fn new(capacity: usize) -> MemoryBudget {
        MemoryBudget(Arc::new(State { capacity: capacity.max(1), used: Mutex::new(0), freed: Condvar::new() }))
    }

    /// Block until `bytes` (at most the whole budget) are free, and take them.
    pub fn acquire(&self, bytes: usize) -> Reservation {
        let bytes = bytes.min(self.0.capacity);
        let mut used = self.0.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + bytes > self.0.capacity {
            used = self.0.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += bytes;
        Reservation { budget: self.clone(), bytes }
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        *self.0.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Reservation {
    /// Give back what the call no longer needs (after decoding, only its 16 kHz audio stays).
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    fn release(&self, bytes: usize) {
        let mut used = self.budget.0.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= bytes;
        self.budget.0.freed.notify_all();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn acquisitions_wait_for_room_and_oversized_ones_run_alone() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.acquire(60);
        let big = budget.clone();
        let waiter = std::thread::spawn(move || big.acquire(1_000).bytes);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a call larger than what is free waits");
        a.shrink_to(10);
        assert_eq!(budget.used(), 10);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "an oversized call needs the whole budget");
        drop(a);
        assert_eq!(waiter.join().unwrap(), 100);
        assert_eq!(budget.used(), 0);
    }
}
