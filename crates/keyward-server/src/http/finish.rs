//! Requests that finish even when their client leaves.
//!
//! hyper drops a connection's request in flight when its client closes the
//! connection. Dropped between acting and auditing, a request would leave
//! a key change committed but not in the index or not on record, or an
//! order forwarded without its outcome. [`Finish`] runs the request in
//! place, in the connection's task, and only when it is dropped unfinished
//! hands what is left to a task of its own, which runs it to the end.
//!
//! It replaced a task per request (`tokio::spawn`, then waiting on the
//! handle), which gave the same guarantee at a price every request paid: a
//! task to schedule, the answer copied out of it, and a wake-up to resume
//! the connection. Here only a request whose client left pays for a task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that runs to completion even if dropped (see the module).
pub(crate) struct Finish<F: Future<Output: Send + 'static> + Send + 'static> {
    /// `None` once finished.
    fut: Option<Pin<Box<F>>>,
}

impl<F: Future<Output: Send + 'static> + Send + 'static> Finish<F> {
    pub(crate) fn new(fut: F) -> Self {
        Self { fut: Some(Box::pin(fut)) }
    }
}

impl<F: Future<Output: Send + 'static> + Send + 'static> Future for Finish<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Out while it runs: if it panics, it unwinds as a local and is
        // dropped, never handed to a task (a future that panicked cannot
        // be polled again); the panic answers the request (500).
        let Some(mut fut) = this.fut.take() else {
            panic!("Finish polled after it finished");
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(out),
            Poll::Pending => {
                this.fut = Some(fut);
                Poll::Pending
            }
        }
    }
}

impl<F: Future<Output: Send + 'static> + Send + 'static> Drop for Finish<F> {
    fn drop(&mut self) {
        // No runtime means the process is ending: nothing can run it.
        if let Some(fut) = self.fut.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = fut.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Finish;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn a_finished_future_gives_its_output_in_place() {
        assert_eq!(Finish::new(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn a_future_dropped_midway_runs_to_its_end_in_a_task_of_its_own() {
        let (go, wait) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel::<&'static str>();
        let fut = Finish::new(async move {
            let _ = wait.await;
            let _ = done_tx.send("finished");
        });
        // Polled once (it waits), then dropped like a request whose client left.
        let timed_out = tokio::time::timeout(Duration::from_millis(10), fut).await;
        assert!(timed_out.is_err(), "the future was waiting");
        go.send(()).expect("the dropped future is still alive");
        let got = tokio::time::timeout(Duration::from_secs(5), done).await.expect("it finished").expect("sent");
        assert_eq!(got, "finished");
    }

    #[tokio::test]
    async fn a_future_dropped_before_its_first_poll_still_runs() {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let (tx, rx) = oneshot::channel::<()>();
        drop(Finish::new(async move {
            r.store(true, Ordering::SeqCst);
            let _ = tx.send(());
        }));
        tokio::time::timeout(Duration::from_secs(5), rx).await.expect("it ran").expect("sent");
        assert!(ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_future_that_panicked_is_not_run_again() {
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p = polls.clone();
        let fut = Finish::new(async move {
            p.fetch_add(1, Ordering::SeqCst);
            panic!("the request's own panic");
        });
        let caught = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut)).await;
        assert!(caught.is_err(), "the panic reaches the caller");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(polls.load(Ordering::SeqCst), 1, "no task polled it again");
    }
}
