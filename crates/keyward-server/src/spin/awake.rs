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
//!
//! It must spin on another CPU than the thread that polls. The scheduler
//! does not know that: woken by a serving thread, the spinner lands on its
//! CPU (wake-affine placement), and the two then share one CPU, each
//! yielding to the other, while the client's CPU halts. Sampled at one
//! connection, they shared one in 12–40% of the samples. So the spinner
//! checks, as it spins, whether it sits on the CPU of the serving thread
//! that extended it last, and if so leaves it: its affinity becomes every
//! CPU it may use but that one.

use nix::sched::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity};
use nix::unistd::Pid;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    /// The CPU of the serving thread that extended the deadline last
    /// ([`NO_CPU`] if unknown): the one not to spin on.
    polling_cpu: AtomicUsize,
}

const NO_CPU: usize = usize::MAX;

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
        let cpu = sched_getcpu().unwrap_or(NO_CPU);
        if self.polling_cpu.load(Ordering::Relaxed) != cpu {
            self.polling_cpu.store(cpu, Ordering::Relaxed);
        }
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
        let placement = Placement::new();
        while !self.stop.load(Ordering::Relaxed) {
            if self.due() {
                placement.avoid(self.polling_cpu.load(Ordering::Relaxed));
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

/// Where the spinning thread may run: every CPU it was allowed at start,
/// less the one it last found a serving thread polling on.
struct Placement {
    /// The CPUs allowed at start (a cgroup or `taskset` may narrow them).
    allowed: Option<CpuSet>,
}

impl Placement {
    fn new() -> Self {
        Self { allowed: sched_getaffinity(Pid::from_raw(0)).ok() }
    }

    /// Leaves `cpu` for the other CPUs allowed if the thread runs on it:
    /// one system call, only when the two met.
    fn avoid(&self, cpu: usize) {
        let Some(allowed) = self.allowed.as_ref() else { return };
        if cpu == NO_CPU || sched_getcpu() != Ok(cpu) {
            return;
        }
        let mut rest = *allowed;
        if rest.unset(cpu).is_err() || (0..CpuSet::count()).all(|c| !rest.is_set(c).unwrap_or(false)) {
            return;
        }
        // Best effort: a thread that cannot move only spins where it is.
        let _ = sched_setaffinity(Pid::from_raw(0), &rest);
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
            polling_cpu: AtomicUsize::new(NO_CPU),
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

    /// The thread's directory in /proc (Linux).
    fn task() -> std::path::PathBuf {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "keyward-awake"))
            .map(|e| e.path())
            .unwrap()
    }

    /// The thread's `stat` fields after its name.
    fn stat() -> Vec<String> {
        let stat = std::fs::read_to_string(task().join("stat")).unwrap();
        stat.rsplit(')').next().unwrap().split_whitespace().map(str::to_string).collect()
    }

    /// The thread's CPU time.
    fn cpu_ticks() -> u64 {
        let fields = stat();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    fn cpus(set: &CpuSet) -> Vec<usize> {
        (0..CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false)).collect()
    }

    #[test]
    fn the_thread_spins_only_until_the_deadline_leaves_the_extending_cpu_and_stops_when_dropped() {
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

        // Put on the CPU of the thread extending it, it leaves that CPU.
        let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
        if let [here, ..] = cpus(&allowed)[..]
            && cpus(&allowed).len() > 1
        {
            let only = |cpu| {
                let mut set = CpuSet::new();
                set.set(cpu).unwrap();
                set
            };
            let tid = Pid::from_raw(task().file_name().unwrap().to_str().unwrap().parse().unwrap());
            let shared = s.clone();
            std::thread::spawn(move || {
                sched_setaffinity(Pid::from_raw(0), &only(here)).unwrap();
                shared.extend(Instant::now() + Duration::from_millis(400));
                sched_setaffinity(tid, &only(here)).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                let now = cpus(&sched_getaffinity(tid).unwrap());
                assert!(!now.contains(&here) && !now.is_empty(), "{now:?} still holds {here}");
                assert_ne!(stat()[36].parse::<usize>().unwrap(), here, "it runs elsewhere");
            })
            .join()
            .unwrap();
        }

        drop(a);
        assert_eq!(Arc::strong_count(&s), 1, "dropped, the thread ended");
    }
}
