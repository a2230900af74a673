//! Spreading connections over the serving threads.
//!
//! Every serving thread accepts from the same listening socket, and the
//! one that gets to `accept` first takes the connection: under a burst of
//! new connections that is the thread already awake and polling, so they
//! pile up on it. Measured with wrk's 32 connections on 2 threads, one
//! thread held all 32 in two runs of three, and the other served nothing.
//!
//! So each thread counts the connections it serves, and a thread that
//! accepts one while another serves fewer hands it there (the socket
//! moves between the threads' runtimes, before any byte is read). A
//! connection stays where it was accepted when that thread is among the
//! least busy, which is always the case for a lone client: handing over
//! costs a wake-up across threads, once per connection, never per request.
//!
//! `SO_REUSEPORT` (a listening socket per thread, the kernel spreading by
//! address hash) would do it without counting, but it lets any process of
//! the same user bind the port too and take a share of the connections,
//! bearer keys and all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// A connection accepted by one thread, handed to another with what it
/// holds (its places under the connection bounds, its count).
pub(super) struct Handed<H> {
    pub(super) tcp: std::net::TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) held: H,
    pub(super) count: Counted,
}

/// Each serving thread's open connections, and a way to hand it one.
pub(super) struct Spread<H> {
    open: Arc<[AtomicUsize]>,
    inboxes: Vec<mpsc::UnboundedSender<Handed<H>>>,
}

/// One serving thread's side of a [`Spread`].
pub(super) struct Seat<H> {
    pub(super) spread: Arc<Spread<H>>,
    pub(super) me: usize,
    pub(super) inbox: mpsc::UnboundedReceiver<Handed<H>>,
}

/// One connection in a thread's count, taken off when dropped.
pub(super) struct Counted {
    open: Arc<[AtomicUsize]>,
    thread: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open[self.thread].fetch_sub(1, Ordering::Relaxed);
    }
}

impl<H> Spread<H> {
    /// A spread over `threads` threads: one seat each.
    pub(super) fn seats(threads: usize) -> Vec<Seat<H>> {
        let (inboxes, receivers): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::unbounded_channel()).unzip();
        let spread = Arc::new(Spread { open: (0..threads).map(|_| AtomicUsize::new(0)).collect(), inboxes });
        receivers.into_iter().enumerate().map(|(me, inbox)| Seat { spread: spread.clone(), me, inbox }).collect()
    }

    /// Where a connection accepted by thread `me` is served: the thread
    /// serving the fewest, `me` when it is one of those. The connection is
    /// counted there at once, so the next one accepted sees it.
    pub(super) fn place(&self, me: usize) -> (usize, Counted) {
        let load = |i: usize| self.open[i].load(Ordering::Relaxed);
        let mine = load(me);
        let least = (0..self.open.len()).min_by_key(|&i| (load(i), i != me)).unwrap_or(me);
        let to = if load(least) < mine { least } else { me };
        self.open[to].fetch_add(1, Ordering::Relaxed);
        (to, Counted { open: self.open.clone(), thread: to })
    }

    /// Hands `h` to thread `to`; gives it back if that thread stopped.
    pub(super) fn hand(&self, to: usize, h: Handed<H>) -> Result<(), Handed<H>> {
        self.inboxes[to].send(h).map_err(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(seats: &[Seat<()>]) -> Vec<usize> {
        seats[0].spread.open.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    #[test]
    fn a_burst_accepted_by_one_thread_is_spread_evenly() {
        let seats = Spread::<()>::seats(2);
        let spread = seats[0].spread.clone();
        // Thread 0 accepts all 32: every other one goes to thread 1.
        let held: Vec<(usize, Counted)> = (0..32).map(|_| spread.place(0)).collect();
        assert_eq!(counts(&seats), [16, 16]);
        assert_eq!(held.iter().filter(|(to, _)| *to == 1).count(), 16);
        // Closing thread 1's connections: the next ones go there.
        drop(held);
        assert_eq!(counts(&seats), [0, 0]);
    }

    #[test]
    fn a_connection_stays_where_it_was_accepted_unless_another_serves_fewer() {
        let seats = Spread::<()>::seats(3);
        let spread = seats[0].spread.clone();
        let (to, first) = spread.place(2);
        assert_eq!(to, 2, "a lone client is served where it was accepted");
        let (to, _second) = spread.place(2);
        assert_ne!(to, 2, "thread 2 serves one, others none");
        drop(first);
        let (to, _third) = spread.place(2);
        assert_eq!(to, 2, "tied with the least busy: stays");
    }

    #[test]
    fn a_connection_handed_to_a_stopped_thread_comes_back() {
        let mut seats = Spread::<u8>::seats(2);
        let spread = seats[0].spread.clone();
        drop(seats.pop());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let peer = tcp.local_addr().unwrap();
        let (to, count) = spread.place(0);
        assert_eq!(to, 0);
        let back = spread.hand(1, Handed { tcp, peer, held: 7, count }).expect_err("thread 1 stopped");
        assert_eq!(back.held, 7);
        // Live seats receive what they are handed.
        let tcp = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_, count) = spread.place(0);
        assert!(spread.hand(0, Handed { tcp, peer, held: 9, count }).is_ok());
        assert_eq!(seats[0].inbox.try_recv().map(|h| h.held).ok(), Some(9));
    }
}
