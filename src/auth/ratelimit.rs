//! Request budgets per principal and per source address (GCRA through
//! `governor`). A refusal says how long to wait, for `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Requests per minute, each also the burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub per_principal_per_minute: NonZeroU32,
    pub per_address_per_minute: NonZeroU32,
}

pub struct RateLimits {
    clock: DefaultClock,
    per_principal: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            clock: DefaultClock::default(),
            per_principal: RateLimiter::keyed(Quota::per_minute(settings.per_principal_per_minute)),
            per_address: RateLimiter::keyed(Quota::per_minute(settings.per_address_per_minute)),
        }
    }

    /// Ok, or how long until the next request from this address is accepted.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Duration> {
        self.per_address
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Ok, or how long until the next request of this principal is accepted.
    pub fn check_principal(&self, principal_id: &str) -> Result<(), Duration> {
        self.per_principal
            .check_key(&principal_id.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose budget is full again, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.per_principal.retain_recent();
        self.per_address.retain_recent();
    }
}

/// Whole seconds for `Retry-After`, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
