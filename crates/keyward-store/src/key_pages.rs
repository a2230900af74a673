//! Every access key a page at a time, as [`crate::Store::key_pages`]
//! reads them for the server to load: one snapshot, the next page read
//! (and decoded) while the caller works on the one it has.

use crate::{KeyRecord, StoreError, StoreResult};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One message from the reader: a page being decoded or read, a failure,
/// or the end.
enum Message {
    Page(JoinHandle<StoreResult<Vec<KeyRecord>>>),
    Ready(Vec<KeyRecord>),
    Failed(StoreError),
    End,
}

/// Pages of access keys in the store's own order ([`KeyPages::next`]).
/// The reader says where the pages end: a reader that stops before (its
/// task gone) is an error, never a shorter list of keys.
#[derive(Debug)]
pub struct KeyPages {
    recv: mpsc::Receiver<Message>,
    ended: bool,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Page(_) => "Page",
            Message::Ready(_) => "Ready",
            Message::Failed(_) => "Failed",
            Message::End => "End",
        })
    }
}

impl KeyPages {
    /// The next page, `None` after the last.
    pub async fn next(&mut self) -> StoreResult<Option<Vec<KeyRecord>>> {
        if self.ended {
            return Ok(None);
        }
        match self.recv.recv().await {
            Some(Message::Page(decoding)) => {
                decoding.await.map_err(|e| StoreError::Unavailable(format!("decoding access keys: {e}")))?.map(Some)
            }
            Some(Message::Ready(page)) => Ok(Some(page)),
            Some(Message::Failed(e)) => Err(e),
            Some(Message::End) => {
                self.ended = true;
                Ok(None)
            }
            None => Err(StoreError::Unavailable("the access-key reader stopped before the last page".into())),
        }
    }

    /// Pages already in memory.
    pub(crate) fn ready(pages: Vec<Vec<KeyRecord>>) -> Self {
        let (send, recv) = mpsc::channel(pages.len() + 1);
        for p in pages {
            let _ = send.try_send(Message::Ready(p));
        }
        let _ = send.try_send(Message::End);
        Self { recv, ended: false }
    }

    /// Pages a reader task sends through the [`PageSender`]: it runs at
    /// most one page ahead of the caller.
    pub(crate) fn channel() -> (PageSender, Self) {
        let (send, recv) = mpsc::channel(1);
        (PageSender { send }, Self { recv, ended: false })
    }
}

/// The reader's end of [`KeyPages::channel`].
#[derive(Clone)]
pub(crate) struct PageSender {
    send: mpsc::Sender<Message>,
}

impl PageSender {
    /// Sends a page that `decode` turns into keys on a blocking thread
    /// (the reader goes on to the next meanwhile). False when the caller
    /// is gone.
    pub(crate) async fn page(&self, decode: impl FnOnce() -> StoreResult<Vec<KeyRecord>> + Send + 'static) -> bool {
        self.send.send(Message::Page(tokio::task::spawn_blocking(decode))).await.is_ok()
    }

    /// Sends a page read on a blocking thread, waiting while the caller
    /// has not taken the one before. False when the caller is gone.
    pub(crate) fn blocking_page(&self, page: Vec<KeyRecord>) -> bool {
        self.send.blocking_send(Message::Ready(page)).is_ok()
    }

    /// Ends the pages with `result`: the error that stopped the reader, or none.
    pub(crate) async fn end(self, result: StoreResult<()>) {
        let _ = self.send.send(result.map_or_else(Message::Failed, |()| Message::End)).await;
    }
}
