//! The sweep of expired entries, in batches: the scheduled `data-sweep` function runs it on
//! AWS, and the local adapter runs it as a background task.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::store::{Store, StoreError, now_millis};

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Expired entries removed.
    pub deleted: u64,
    /// Batches (transactions) that removed entries.
    pub batches: u64,
}

/// Removes the entries expired by now, a batch at a time, until none is left or `deadline`
/// has passed (the rest waits for the next sweep).
pub async fn sweep_expired(store: &Store, deadline: Instant) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    loop {
        let removed = store.sweep_expired_batch(now_millis()).await?;
        if removed == 0 {
            return Ok(report);
        }
        report.deleted += removed as u64;
        report.batches += 1;
        if Instant::now() >= deadline {
            return Ok(report);
        }
    }
}

/// A sweep every `interval` in a background task, as the local adapter runs it.
pub struct PeriodicSweep {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PeriodicSweep {
    /// Starts sweeping `store`, the first time at once.
    pub fn start(store: Store, interval: Duration) -> PeriodicSweep {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = ticks.tick() => {}
                }
                let deadline = Instant::now() + interval;
                tokio::select! {
                    // A transaction cut short here is rolled back: the batch waits for the next
                    // sweep, whole.
                    _ = &mut stopped => return,
                    swept = sweep_expired(&store, deadline) => match swept {
                        Ok(report) if report.deleted > 0 => {
                            tracing::info!(deleted = report.deleted, batches = report.batches, "swept expired entries");
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "sweep of expired entries failed"),
                    },
                }
            }
        });
        PeriodicSweep { stop, task }
    }

    /// Stops the task, cutting short a sweep in progress, and waits for it to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
