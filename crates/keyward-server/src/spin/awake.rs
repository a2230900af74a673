//! Keeping one more CPU awake while serving threads poll.
//!
//! A serving thread that polls keeps its own CPU from halting, but the
//! answer it writes wakes someone else: a client on the same machine (a bot
//! beside its keyward, a benchmark), whose CPU halted while it waited. On
//! the virtual machines keyward is measured on that wake-up, an interrupt
//! to a halted virtual CPU, took 16–17 µs of a one-connection round trip
//! of about 50. The guest kernel's `haltpoll` would poll that CPU before
//! halting it; where it is off (`guest_halt_poll_ns` 0), keyward does it:
//! one thread spins on another CPU, yielding to anything runnable there,
//! for as long as a serving thread would poll its own sockets.
//!
//! It spins only while the serving threads find idle time: a serving
//! thread extends the deadline after a poll that waited (its CPU had
//! nothing to do), so under a load that keeps every CPU busy the polls end
//! at once, nothing is extended and the thread sleeps. A yielding spinner
//! on a saturated machine would take CPU from the requests themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// The deadline and the sleeping thread, shared with the serving threads.
#[derive(Debug)]
pub(crate) struct Shared {
    epoch: Instant,
    /// Nanoseconds after `epoch` until which the thread spins.
    until: AtomicU64,
    /// The thread is parked (or about to be): an extension unparks it.
    asleep: AtomicBool,
    stop: AtomicBool,
    thread: std::sync::OnceLock<Thread>,
}

impl Shared {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Keeps the CPU awake until `until`, waking the thread if it sleeps.
    pub(crate) fn extend(&self, until: Instant) {
        // Sequentially consistent with the thread's `asleep` then `until`:
        // either it sees the new deadline, or this sees it asleep. Never
        // earlier than another serving thread's deadline.
        let until = self.nanos(until);
        if self.until.load(Ordering::Relaxed) < until {
            self.until.fetch_max(until, Ordering::SeqCst);
        }
        if self.asleep.load(Ordering::SeqCst)
            && self.asleep.swap(false, Ordering::SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    fn due(&self) -> bool {
        self.nanos(Instant::now()) < self.until.load(Ordering::SeqCst)
    }

    fn run(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            if self.due() {
                std::thread::yield_now();
                continue;
            }
            self.asleep.store(true, Ordering::SeqCst);
            if self.due() || self.stop.load(Ordering::SeqCst) {
                self.asleep.store(false, Ordering::SeqCst);
                continue;
            }
            std::thread::park();
            self.asleep.store(false, Ordering::SeqCst);
        }
    }
}

/// The spinning thread; stops when dropped.
#[derive(Debug)]
pub(crate) struct Awake {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Awake {
    /// Starts the thread (asleep until a serving thread extends it).
    pub(crate) fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            until: AtomicU64::new(0),
            asleep: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: std::sync::OnceLock::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("keyward-awake".into()).spawn(move || s.run())?;
        let _ = shared.thread.set(thread.thread().clone());
        Ok(Self { shared, thread: Some(thread) })
    }

    /// What the serving threads extend.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A poll that waited at least this long found its CPU idle: the machine
/// has time to spare, and keeping another CPU awake costs no request any.
pub(super) const IDLE: Duration = Duration::from_micros(5);

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's CPU time, from /proc (Linux).
    fn cpu_ticks() -> u64 {
        let tid = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "keyward-awake"))
            .map(|e| e.path())
            .unwrap();
        let stat = std::fs::read_to_string(tid.join("stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    #[test]
    fn the_thread_spins_only_until_the_deadline_and_stops_when_dropped() {
        let a = Awake::start().unwrap();
        let s = a.shared();
        std::thread::sleep(Duration::from_millis(50));
        assert!(s.asleep.load(Ordering::SeqCst), "nothing extended: it sleeps");
        let idle = cpu_ticks();
        std::thread::sleep(Duration::from_millis(300));
        assert!(cpu_ticks() - idle <= 1, "asleep, it takes no CPU");

        s.extend(Instant::now() + Duration::from_millis(300));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!s.asleep.load(Ordering::SeqCst), "extended: it spins");
        std::thread::sleep(Duration::from_millis(400));
        assert!(s.asleep.load(Ordering::SeqCst), "the deadline passed: asleep again");
        assert!(cpu_ticks() > idle, "it spun in between");

        drop(a);
        assert_eq!(Arc::strong_count(&s), 1, "dropped, the thread ended");
    }
}
