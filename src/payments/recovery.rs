//! The payment workers every node runs: recovery settles acquirer calls
//! whose answer was lost (a crash, a timeout), expiry releases holds that
//! were never completed. Both are safe to run on every node at once: an
//! intent is claimed by one node at a time and every session write names
//! the revision it read.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::service::PaymentService;

pub async fn run(service: Arc<PaymentService>, every: Duration, shutdown: CancellationToken) {
    loop {
        match service.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(settled = n, "payment intents recovered"),
            Err(e) => tracing::warn!(error = %e, "payment recovery could not run now"),
        }
        match service.expire_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "expired payment holds released"),
            Err(e) => tracing::warn!(error = %e, "payment expiry could not run now"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
