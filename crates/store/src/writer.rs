//! Group commit for accepted deliveries: concurrent requests hand their delivery to one task,
//! which stores whatever has queued up in a single transaction (one fsync for many) and then
//! answers each request. Full durability, without paying a commit per request.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::records::{DeliveryOutcome, NewDelivery};
use crate::{DynStore, StoreError};

/// The most deliveries committed in one transaction.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<DeliveryOutcome, Arc<StoreError>>>;

/// A handle for storing accepted deliveries through the group-commit task.
#[derive(Clone)]
pub struct DeliveryWriter {
    tx: mpsc::Sender<(NewDelivery, Reply)>,
}

impl DeliveryWriter {
    /// Starts the commit task. `stored` is notified after every commit that stored something,
    /// so the queue consumer can wake at once instead of polling.
    pub fn spawn(store: DynStore, stored: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx, stored));
        Self { tx }
    }

    /// Stores one delivery durably; returns once its transaction has committed.
    pub async fn store(&self, delivery: NewDelivery) -> Result<DeliveryOutcome, Arc<StoreError>> {
        let (reply, answer) = oneshot::channel();
        let closed = || Arc::new(StoreError::Config("the delivery writer has stopped".into()));
        self.tx
            .send((delivery, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run(store: DynStore, mut rx: mpsc::Receiver<(NewDelivery, Reply)>, stored: Arc<Notify>) {
    let mut deliveries = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((delivery, reply)) = rx.recv().await {
        deliveries.push(delivery);
        replies.push(reply);
        while deliveries.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((delivery, reply)) => {
                    deliveries.push(delivery);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }

        match store.insert_deliveries(&deliveries).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                stored.notify_one();
            }
            Err(err) => {
                tracing::warn!(error = %err, batch = deliveries.len(), "delivery batch failed");
                let err = Arc::new(err);
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
        deliveries.clear();
    }
}
