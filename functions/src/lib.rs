//! What the Lambda functions share beyond `kv_shared`: the CloudFormation custom-resource
//! protocol that `db-migrate` answers, and the time budget of an invocation. The API functions
//! are each a few lines of `src/bin`.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub mod custom_resource;

/// The instant by which work must stop so that an invocation whose `deadline` is the Lambda
/// context's still has `margin` left to answer in (and at least one second to work).
pub fn stop_before(deadline: SystemTime, margin: Duration) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(margin);
    Instant::now() + left.max(Duration::from_secs(1))
}
