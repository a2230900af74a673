//! Polling before a serving thread sleeps.
//!
//! A serving thread with nothing to do sleeps in `epoll_wait`. On a virtual
//! machine the CPU it leaves then halts, and the next request (or the
//! exchange's answer) wakes it with an interrupt between virtual CPUs: on
//! the machines keyward is measured on, most of a one-connection round
//! trip. With the guest kernel's own halt polling turned on, the proxy's
//! added latency at one connection fell from ~120 µs to ~40 µs; but that
//! is the host's and the image's choice (here `guest_halt_poll_ns` is 0),
//! not keyward's.
//!
//! So a serving thread about to sleep first polls the sockets it serves
//! (and the exchange connections it opened) for a short window, the way
//! the kernel's `haltpoll` governor polls before halting, and sleeps only
//! when nothing came. The window adapts the same way: it grows while a
//! thread's sleeps are short (polling would have caught the wake-up) and
//! shrinks while they are long, so an idle server does not poll at all,
//! and a loaded one rarely sleeps to begin with. While polling the thread
//! yields to anything else runnable on its CPU, and stops at once when
//! another thread hands it work (a store answer, say).
//!
//! Polling pays for one client waiting on the answer to its one request,
//! not for many. A thread that served more than one request since it last
//! woke ([`served`]) has clients enough to keep it busy: its next request
//! is near anyway, and its CPU rarely halts. Spinning there only hides the
//! thread from the scheduler, which moves runnable threads onto a CPU
//! that goes idle, not onto one that spins: at 32 connections on two CPUs
//! polling cost verify 4–8% of its throughput. Such a thread sleeps at
//! once.
//!
//! Polling keeps the serving thread's own CPU awake; the client it answers
//! may sit on another, halted one (a bot beside its keyward). While the
//! serving threads find idle time, one more thread keeps another CPU from
//! halting ([`Awake`]).
//!
//! `epoll` here is a second, level-triggered interest list beside the
//! runtime's own: it only says whether to stop polling; the runtime's
//! (edge-triggered) list still delivers every event. Closing a socket
//! removes it from both.

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::cell::{Cell, RefCell};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::RuntimeMetrics;

mod awake;

pub(crate) use awake::Awake;

/// The window a thread starts polling with once its sleeps turn short.
const START: Duration = Duration::from_micros(10);

/// A thread that served more requests than this since it woke sleeps
/// without polling.
const ONE_CLIENT: u32 = 1;

thread_local! {
    static POLLER: RefCell<Option<Poller>> = const { RefCell::new(None) };
    /// Requests this thread started since it last woke (see [`served`]).
    static SERVED: Cell<u32> = const { Cell::new(0) };
}

/// A serving thread starts a request: counted, so that a thread busy with
/// many clients does not poll (see the module).
pub(crate) fn served() {
    SERVED.with(|n| n.set(n.get().saturating_add(1)));
}

/// How long to poll before sleeping: haltpoll's rule. Grows (doubling from
/// [`START`]) after a sleep short enough that polling up to `max` would
/// have caught its end; halves after a longer one, down to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    max: Duration,
    now: Duration,
}

impl Window {
    fn new(max: Duration) -> Self {
        Self { max, now: Duration::ZERO }
    }

    /// How long to poll at the next sleep.
    fn get(&self) -> Duration {
        self.now
    }

    /// A sleep (polling included) lasted `slept`.
    fn slept(&mut self, slept: Duration) {
        if slept <= self.max {
            self.now = (self.now * 2).max(START).min(self.max);
        } else {
            self.now /= 2;
            if self.now < START {
                self.now = Duration::ZERO;
            }
        }
    }
}

/// One serving thread's polling state.
struct Poller {
    epoll: Epoll,
    window: Window,
    runtime: RuntimeMetrics,
    /// When the thread last went to sleep without polling catching a wake-up.
    slept_at: Option<Instant>,
    /// The thread keeping another CPU awake, extended after each poll that
    /// found this CPU idle.
    awake: Option<Arc<awake::Shared>>,
}

/// How serving threads poll before they sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Polling {
    /// The longest window; zero never polls.
    pub max: Duration,
    /// Keep another CPU awake while they poll ([`Awake`]).
    pub keep_awake: bool,
}

/// Makes the current thread (a serving thread running the runtime
/// `runtime` reports on) poll for up to `max` before it sleeps, and keep
/// `awake` spinning while it does. Without it (or with `max` zero) the
/// hooks below do nothing.
pub(crate) fn install(max: Duration, runtime: RuntimeMetrics, awake: Option<&Awake>) -> std::io::Result<()> {
    if max.is_zero() {
        return Ok(());
    }
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let awake = awake.map(Awake::shared);
    POLLER.with(|p| *p.borrow_mut() = Some(Poller { epoll, window: Window::new(max), runtime, slept_at: None, awake }));
    Ok(())
}

/// Polls `fd` (a socket this thread serves or reads) before sleeping. Not
/// a serving thread: nothing.
pub(crate) fn watch(fd: impl AsFd) {
    POLLER.with(|p| {
        if let Some(p) = p.borrow().as_ref() {
            // Best effort: a socket that cannot be added is only not polled.
            let _ = p.epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, 0));
        }
    });
}

/// The runtime is about to sleep: polls for the current window first.
pub(crate) fn before_park() {
    POLLER.with(|p| {
        let mut p = p.borrow_mut();
        let Some(p) = p.as_mut() else { return };
        let start = Instant::now();
        let window = p.window.get();
        let one_client = SERVED.with(|n| n.replace(0)) <= ONE_CLIENT;
        if !window.is_zero() && one_client && poll(&p.epoll, &p.runtime, start + window) {
            let now = Instant::now();
            // For the longest window, not the current one: a thread woken
            // for a few microseconds would find its deadline gone.
            if let Some(a) = p.awake.as_ref().filter(|_| now - start >= awake::IDLE) {
                a.extend(now + p.window.max);
            }
            return;
        }
        p.slept_at = Some(start);
    });
}

/// The runtime woke: after a sleep, adapts the window to how long it was.
pub(crate) fn after_unpark() {
    POLLER.with(|p| {
        let mut p = p.borrow_mut();
        let Some(p) = p.as_mut() else { return };
        if let Some(at) = p.slept_at.take() {
            p.window.slept(at.elapsed());
        }
    });
}

/// Polls until a watched socket is readable or another thread handed the
/// runtime work (true), or `until` (false).
fn poll(epoll: &Epoll, runtime: &RuntimeMetrics, until: Instant) -> bool {
    let mut events = [EpollEvent::empty()];
    loop {
        if matches!(epoll.wait(&mut events, EpollTimeout::ZERO), Ok(n) if n > 0) || runtime.global_queue_depth() > 0 {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_grows_while_sleeps_are_short_and_goes_after_long_ones() {
        let max = Duration::from_micros(200);
        let mut w = Window::new(max);
        assert_eq!(w.get(), Duration::ZERO, "an idle thread does not poll");
        w.slept(Duration::from_micros(30));
        assert_eq!(w.get(), START);
        w.slept(Duration::from_micros(30));
        assert_eq!(w.get(), START * 2);
        for _ in 0..10 {
            w.slept(Duration::from_micros(150));
        }
        assert_eq!(w.get(), max, "capped");
        w.slept(Duration::from_millis(500));
        assert_eq!(w.get(), max / 2);
        for _ in 0..5 {
            w.slept(Duration::from_secs(1));
        }
        assert_eq!(w.get(), Duration::ZERO, "a long-idle thread stops polling");
        let mut off = Window::new(Duration::ZERO);
        off.slept(Duration::ZERO);
        assert_eq!(off.get(), Duration::ZERO, "a zero maximum never polls");
    }

    #[test]
    fn polling_ends_at_a_readable_socket_or_at_work_from_another_thread_else_at_the_deadline() {
        use std::io::{Read, Write};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let metrics = runtime.metrics();
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        epoll.add(&b, EpollEvent::new(EpollFlags::EPOLLIN, 0)).unwrap();
        let never = Instant::now() + Duration::from_secs(3600);

        let until = Instant::now() + Duration::from_millis(20);
        assert!(!poll(&epoll, &metrics, until), "nothing came");
        assert!(Instant::now() >= until, "it polled until the deadline");

        a.write_all(b"x").unwrap();
        assert!(poll(&epoll, &metrics, never), "a readable socket ends polling");
        let mut byte = [0u8];
        b.read_exact(&mut byte).unwrap();
        assert!(!poll(&epoll, &metrics, Instant::now()), "read: nothing pending any more");

        // A task woken (or spawned) from another thread waits in the runtime's shared queue.
        let handle = runtime.handle().clone();
        std::thread::spawn(move || drop(handle.spawn(async {}))).join().unwrap();
        assert!(poll(&epoll, &metrics, never), "work from another thread ends polling");
        runtime.block_on(tokio::task::yield_now());
        assert_eq!(metrics.global_queue_depth(), 0);

        drop(b);
        assert!(!poll(&epoll, &metrics, Instant::now()), "a closed socket leaves the list");
    }

    #[test]
    fn a_thread_that_served_several_requests_since_it_woke_sleeps_without_polling() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let window = Duration::from_millis(300);
        install(window, runtime.metrics(), None).unwrap();
        let park_after = |requests: u32| {
            POLLER.with(|p| p.borrow_mut().as_mut().unwrap().window.now = window);
            for _ in 0..requests {
                served();
            }
            let start = Instant::now();
            before_park();
            after_unpark();
            start.elapsed()
        };
        assert!(park_after(1) >= window, "one client: it polls its window (nothing comes)");
        assert!(park_after(2) < window / 2, "two requests since it woke: it sleeps at once");
        assert!(park_after(1) >= window, "the count starts again at each park");
        assert!(park_after(0) >= window, "a park with no request in between (a store answer, say) polls");
    }
}
