//! A circuit breaker for one acquirer. After `failure_threshold` failures in
//! a row (timeouts, refused connections, 5xx) it opens and refuses calls at
//! once for `open_for`, so chargers hear "try again" in milliseconds instead
//! of waiting out timeouts; then it lets one probe through (half-open) and
//! closes on its success or opens again on its failure. Declines are not
//! failures: the acquirer answered.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::seconds(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: DateTime<Utc> },
    HalfOpen { probing: bool },
}

/// The breaker refused the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOpen;

pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// The state as a caller would see it now.
    pub fn state(&self) -> BreakerState {
        let now = self.clock.now();
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make one call. The permit must be given its outcome; a
    /// permit dropped without one (a cancelled call) counts as a failure.
    pub fn acquire(&self) -> Result<Permit<'_>, BreakerOpen> {
        let now = self.clock.now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => {}
            State::Open { until } if now < until => return Err(BreakerOpen),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
            }
            State::HalfOpen { probing: true } => return Err(BreakerOpen),
        }
        Ok(Permit {
            breaker: self,
            reported: false,
        })
    }

    fn record(&self, success: bool) {
        let now = self.clock.now();
        let mut state = self.lock();
        *state = match (*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold {
                    State::Open {
                        until: now + self.config.open_for,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            // A failed probe, or a late failure from before the breaker opened.
            (State::HalfOpen { .. } | State::Open { .. }, false) => State::Open {
                until: now + self.config.open_for,
            },
        };
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a plain value, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[must_use = "report the outcome with success() or failure()"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    reported: bool,
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(true);
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(false);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    fn breaker(threshold: u32) -> (CircuitBreaker, FixedClock) {
        let clock = FixedClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let b = CircuitBreaker::new(
            BreakerConfig {
                failure_threshold: threshold,
                open_for: Duration::seconds(30),
            },
            Arc::new(clock.clone()),
        );
        (b, clock)
    }

    #[test]
    fn opens_after_threshold_failures_in_a_row() {
        let (b, _) = breaker(3);
        b.acquire().unwrap().failure();
        b.acquire().unwrap().failure();
        b.acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.acquire().err(), Some(BreakerOpen));
    }

    #[test]
    fn half_opens_after_the_wait_and_lets_one_probe_through() {
        let (b, clock) = breaker(1);
        b.acquire().unwrap().failure();
        clock.advance(Duration::seconds(29));
        assert!(b.acquire().is_err());
        clock.advance(Duration::seconds(1));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.acquire().unwrap();
        assert!(b.acquire().is_err(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.acquire().is_ok());
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let (b, clock) = breaker(1);
        b.acquire().unwrap().failure();
        clock.advance(Duration::seconds(30));
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::seconds(29));
        assert!(b.acquire().is_err());
    }

    #[test]
    fn an_abandoned_permit_counts_as_a_failure() {
        let (b, clock) = breaker(1);
        drop(b.acquire().unwrap());
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::seconds(30));
        drop(b.acquire().unwrap());
        assert_eq!(b.state(), BreakerState::Open);
    }
}
