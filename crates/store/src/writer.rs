//! Group commit: concurrent callers hand their item to one task, which stores whatever has
//! queued up in a single transaction (one fsync for many) and then answers each caller. Full
//! durability, without paying a commit per request. Accepted deliveries, emitted platform
//! events and finished runbook executions all go through it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::records::{DeliveryOutcome, NewDelivery, NewPlatformEvent, PlatformEvent};
use crate::runbooks::{BreakerEffect, ExecutionRecord};
use crate::{DynStore, StoreError};

/// The most items committed in one transaction.
const MAX_BATCH: usize = 256;

type Reply<O> = oneshot::Sender<Result<O, Arc<StoreError>>>;
type Commit<I, O> =
    Box<dyn FnMut(Vec<I>) -> Pin<Box<dyn Future<Output = crate::Result<Vec<O>>> + Send>> + Send>;

/// A handle for storing items through one group-commit task. `commit` stores a batch in one
/// transaction and answers one output per item, in order.
pub struct GroupCommit<I, O> {
    tx: mpsc::Sender<(I, Reply<O>)>,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts the commit task; `name` is for logs.
    pub fn spawn<F, Fut>(name: &'static str, mut commit: F) -> Self
    where
        F: FnMut(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = crate::Result<Vec<O>>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let commit: Commit<I, O> = Box::new(move |batch| Box::pin(commit(batch)));
        tokio::spawn(run(name, rx, commit));
        Self { tx }
    }

    /// Stores one item; returns once its transaction has committed.
    pub async fn submit(&self, item: I) -> Result<O, Arc<StoreError>> {
        let (reply, answer) = oneshot::channel();
        let closed = || {
            Arc::new(StoreError::Config(
                "the group-commit writer has stopped".into(),
            ))
        };
        self.tx.send((item, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run<I, O>(
    name: &'static str,
    mut rx: mpsc::Receiver<(I, Reply<O>)>,
    mut commit: Commit<I, O>,
) {
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((item, reply)) = rx.recv().await {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(item);
        replies.push(reply);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((item, reply)) => {
                    batch.push(item);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }

        let size = batch.len();
        match commit(batch).await {
            Ok(outputs) if outputs.len() == replies.len() => {
                for (reply, output) in replies.drain(..).zip(outputs) {
                    let _ = reply.send(Ok(output));
                }
            }
            Ok(outputs) => {
                tracing::error!(
                    writer = name,
                    batch = size,
                    answered = outputs.len(),
                    "group commit answered the wrong number of items"
                );
                let err = Arc::new(StoreError::Config(format!("{name}: batch answer mismatch")));
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
            Err(err) => {
                tracing::warn!(writer = name, error = %err, batch = size, "group commit failed");
                let err = Arc::new(err);
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// A handle for storing accepted deliveries through the group-commit task.
#[derive(Clone)]
pub struct DeliveryWriter {
    inner: GroupCommit<NewDelivery, DeliveryOutcome>,
}

impl DeliveryWriter {
    /// Starts the commit task. `stored` is notified after every commit that stored something,
    /// so the queue consumer can wake at once instead of polling.
    pub fn spawn(store: DynStore, stored: Arc<Notify>) -> Self {
        let inner = GroupCommit::spawn("deliveries", move |batch: Vec<NewDelivery>| {
            let store = store.clone();
            let stored = stored.clone();
            async move {
                let outcomes = store.insert_deliveries(&batch).await?;
                stored.notify_one();
                Ok(outcomes)
            }
        });
        Self { inner }
    }

    /// Stores one delivery durably; returns once its transaction has committed.
    pub async fn store(&self, delivery: NewDelivery) -> Result<DeliveryOutcome, Arc<StoreError>> {
        self.inner.submit(delivery).await
    }
}

/// Platform events appended through one group-commit task.
pub fn event_writer(store: DynStore) -> GroupCommit<NewPlatformEvent, PlatformEvent> {
    GroupCommit::spawn("platform events", move |batch: Vec<NewPlatformEvent>| {
        let store = store.clone();
        async move { store.append_platform_events(&batch).await }
    })
}

/// Finished runbook executions stored through one group-commit task; each answer says
/// whether that execution tripped its runbook's breaker.
pub fn execution_finisher(store: DynStore) -> GroupCommit<(ExecutionRecord, BreakerEffect), bool> {
    GroupCommit::spawn(
        "finished executions",
        move |batch: Vec<(ExecutionRecord, BreakerEffect)>| {
            let store = store.clone();
            async move { store.finish_executions(&batch).await }
        },
    )
}
