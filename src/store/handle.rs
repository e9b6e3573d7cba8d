//! [`Db`]: the async face of the store. One thread owns the connection; async callers send it
//! closures and await the reply, so SQLite never blocks a tokio worker thread and writes from
//! this process are naturally serialised.

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::{Store, StoreError};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A cloneable handle to the database thread.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
}

impl Db {
    /// Moves `store` onto a thread of its own. The thread ends when the last handle is dropped.
    pub fn spawn(mut store: Store) -> std::io::Result<Db> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("claude-worker-db".to_owned()).spawn(move || {
            while let Ok(job) = receiver.recv() {
                job(&mut store);
            }
        })?;
        Ok(Db { jobs })
    }

    /// Runs `f` on the database thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |store| {
                // The caller may have gone away (a cancelled request); the work is done regardless.
                let _ = reply.send(f(store));
            }))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}
