//! The sweep of expired entries, in batches, and the clean-up of finished sessions: the
//! scheduled `data-sweep` function runs it on AWS, and the local adapter runs it as a
//! background task.

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
    /// Rows of finished sessions and expired refresh tokens removed.
    pub sessions_removed: u64,
    /// Failed logins older than the throttling window removed.
    pub login_failures_removed: u64,
}

/// Most finished sessions (and, apart, expired refresh tokens) one statement removes.
const SESSION_BATCH: u32 = 1000;

/// Removes the entries expired by now, a batch at a time, until none is left or `deadline`
/// has passed (the rest waits for the next sweep); then, in the time left, the sessions that
/// ended or whose refresh tokens expired, expired refresh tokens, and failed logins older than
/// `login_window` (they no longer count).
pub async fn sweep_expired(
    store: &Store,
    deadline: Instant,
    login_window: Duration,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    loop {
        let removed = store.sweep_expired_batch(now_millis()).await?;
        report.deleted += removed as u64;
        if removed > 0 {
            report.batches += 1;
        }
        if removed == 0 || Instant::now() >= deadline {
            break;
        }
    }
    while Instant::now() < deadline {
        let removed = store
            .delete_finished_sessions(now_millis(), SESSION_BATCH)
            .await?;
        report.sessions_removed += removed;
        if removed < u64::from(SESSION_BATCH) {
            break;
        }
    }
    if Instant::now() < deadline {
        let window = i64::try_from(login_window.as_millis()).unwrap_or(i64::MAX);
        report.login_failures_removed = store
            .delete_login_failures_before(now_millis().saturating_sub(window))
            .await?;
    }
    Ok(report)
}

/// A sweep every `interval` in a background task, as the local adapter runs it.
pub struct PeriodicSweep {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PeriodicSweep {
    /// Starts sweeping `store`, the first time at once.
    pub fn start(store: Store, interval: Duration, login_window: Duration) -> PeriodicSweep {
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
                    swept = sweep_expired(&store, deadline, login_window) => match swept {
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
