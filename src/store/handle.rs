//! [`Db`]: the async face of the store. One thread owns the connection; async callers send it
//! closures and await the reply, so SQLite never blocks a tokio worker thread and writes from
//! this process are naturally serialised.
//!
//! Group commit: when several operations are queued at once (four tasks finishing together, a
//! burst of `create_task` calls), the thread runs them in one transaction, each in a savepoint,
//! and commits once — one fsync instead of one each. Replies are sent only after that commit,
//! so no caller ever hears of a change that is not durable.
//!
//! When the store finds the database deleted or replaced under it, the thread closes the
//! connection and the handle says so once ([`Db::lost`]); every operation is refused from then on.

use std::sync::{Arc, OnceLock, mpsc};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Lost, Store, StoreError};

/// Delivers an operation's result once its transaction committed (`Ok`) or failed (`Err`).
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut Store) -> Reply + Send>;

/// The most operations one group commit takes.
const MAX_GROUP: usize = 64;

/// A cloneable handle to the database thread.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
    lost: Arc<LostSignal>,
}

/// Set once by the database thread when the database is found deleted or replaced.
#[derive(Default)]
struct LostSignal {
    lost: OnceLock<Lost>,
    token: CancellationToken,
}

impl Db {
    /// Moves `store` onto a thread of its own. The thread ends when the last handle is dropped.
    pub fn spawn(mut store: Store) -> std::io::Result<Db> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let lost = Arc::new(LostSignal::default());
        let signal = lost.clone();
        std::thread::Builder::new().name("claude-worker-db".to_owned()).spawn(move || {
            while let Ok(first) = receiver.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_GROUP {
                    match receiver.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                if batch.len() > 1 && !store.recently_full() && store.begin_group().is_ok() {
                    let replies: Vec<Reply> = batch.into_iter().map(|job| job(&mut store)).collect();
                    let committed = store.end_group();
                    for reply in replies {
                        reply(committed.as_ref().copied());
                    }
                } else {
                    for job in batch {
                        job(&mut store)(Ok(()));
                    }
                }
                if signal.lost.get().is_none()
                    && let Some(lost) = store.lost()
                {
                    let _ = signal.lost.set(lost.clone());
                    store.close_lost();
                    signal.token.cancel();
                }
            }
        })?;
        Ok(Db { jobs, lost })
    }

    /// Resolves once the database was found deleted or replaced under this process (by any
    /// operation: a write before or after its commit, a read); never otherwise.
    pub async fn lost(&self) {
        self.lost.token.cancelled().await;
    }

    /// What every operation is refused with since the database was found deleted or replaced.
    pub fn lost_error(&self) -> Option<StoreError> {
        self.lost.lost.get().map(Lost::error)
    }

    /// Runs `f` on the database thread and returns its result once it is committed.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |store: &mut Store| -> Reply {
                let result = f(store);
                Box::new(move |committed: Result<(), &StoreError>| {
                    // The caller may have gone away (a cancelled request); the work is done regardless.
                    let _ = reply.send(match (committed, result) {
                        (Ok(()), result) => result,
                        // Its own failure says more than the group's (it may be why the group failed).
                        (Err(_), Err(own)) => Err(own),
                        (Err(group), Ok(_)) => Err(group.for_each_waiter()),
                    });
                })
            }))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}
