//! A built-in acquirer for `voltvault dev` and tests. Outcomes are decided
//! by the card number, so every path of a payment session can be driven
//! without a network:
//!
//! | card number         | outcome                                              |
//! |---------------------|------------------------------------------------------|
//! | 4242 4242 4242 4242 | approves                                             |
//! | 5555 5555 5555 4444 | approves                                             |
//! | 4000 0000 0000 0770 | approves up to 100.00 in total (10000 minor units); beyond that, holds and increments decline `insufficient_funds` |
//! | 4000 0000 0000 9995 | declines `insufficient_funds`                        |
//! | 4000 0000 0000 0051 | declines `do_not_honour`                             |
//! | 4000 0000 0000 0002 | declines `card_declined`                             |
//! | 4000 0000 0000 0069 | declines `expired_card`                              |
//! | 4000 0000 0000 0127 | declines `incorrect_cvc`                             |
//! | 4000 0000 0000 9987 | declines `lost_or_stolen`                            |
//! | 4000 0000 0000 1018 | times out: `AcquirerError::Timeout`, nothing held    |
//! | 4000 0000 0000 5001 | fails like a 5xx: `AcquirerError::Unavailable`       |
//! | any other valid PAN | approves                                             |
//!
//! A card whose expiry has passed by the injected clock declines
//! `expired_card`. Every hold can be incremented. State is in memory,
//! keyed by reference; the same idempotency key returns the same outcome
//! and never places a second hold.
//!
//! [`Acquirer::find_hold`] finds holds by either reference. A declined
//! authorization is recorded, as Stripe keeps its failed PaymentIntent, and
//! found as [`Reported::Failed`] with nothing held; a timeout or failure
//! card records nothing, so it is not found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::HoldState as Reported;
use super::replay::{ReplayCache, fingerprint};
use super::{
    Acquirer, AcquirerError, Authorization, AuthorizeRequest, Capture, CaptureRequest, DeclineCode,
    HoldLookup, HoldStatus, IncrementRequest, InvalidReason, Refund, RefundRequest, Void,
    VoidRequest, check_idempotency_key, check_positive,
};
use crate::clock::Clock;
use crate::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Approve,
    /// Approves while the total held stays within this many minor units.
    ApproveUpTo(i64),
    Decline(DeclineCode),
    Timeout,
    Fail,
}

const CARDS: &[(&str, Behaviour)] = &[
    ("4242424242424242", Behaviour::Approve),
    ("5555555555554444", Behaviour::Approve),
    ("4000000000000770", Behaviour::ApproveUpTo(10_000)),
    (
        "4000000000009995",
        Behaviour::Decline(DeclineCode::InsufficientFunds),
    ),
    (
        "4000000000000051",
        Behaviour::Decline(DeclineCode::DoNotHonour),
    ),
    (
        "4000000000000002",
        Behaviour::Decline(DeclineCode::CardDeclined),
    ),
    (
        "4000000000000069",
        Behaviour::Decline(DeclineCode::ExpiredCard),
    ),
    (
        "4000000000000127",
        Behaviour::Decline(DeclineCode::IncorrectCvc),
    ),
    (
        "4000000000009987",
        Behaviour::Decline(DeclineCode::LostOrStolen),
    ),
    ("4000000000001018", Behaviour::Timeout),
    ("4000000000005001", Behaviour::Fail),
];

fn behaviour(digits: &str) -> Behaviour {
    CARDS
        .iter()
        .find(|(number, _)| *number == digits)
        .map_or(Behaviour::Approve, |(_, b)| *b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    Authorized,
    Voided,
    Captured {
        captured: Money,
        refunded: Money,
    },
    /// Declined: nothing is held.
    Failed,
}

#[derive(Debug, Clone)]
struct Hold {
    authorized: Money,
    limit: Option<i64>,
    state: HoldState,
    /// What refunds name, once captured.
    capture_ref: Option<String>,
}

impl Hold {
    fn status(&self, auth_ref: &str) -> HoldStatus {
        let zero = Money::zero(self.authorized.currency);
        let (state, authorized, captured, refunded) = match self.state {
            HoldState::Authorized => (Reported::Authorized, self.authorized, zero, zero),
            HoldState::Voided => (Reported::Voided, self.authorized, zero, zero),
            HoldState::Captured { captured, refunded } => {
                (Reported::Captured, self.authorized, captured, refunded)
            }
            HoldState::Failed => (Reported::Failed, zero, zero, zero),
        };
        HoldStatus {
            auth_ref: auth_ref.to_owned(),
            state,
            authorized,
            captured,
            capture_ref: self.capture_ref.clone(),
            refunded,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    holds: HashMap<String, Hold>,
    /// capture reference -> hold reference
    captures: HashMap<String, String>,
    /// our reference -> hold references, oldest first
    by_reference: HashMap<String, Vec<String>>,
}

impl State {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{:06}", self.next)
    }
}

pub struct Simulator {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    authorizations: ReplayCache<Authorization>,
    increments: ReplayCache<Money>,
    captures: ReplayCache<Capture>,
    voids: ReplayCache<Void>,
    refunds: ReplayCache<Refund>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Simulator")
    }
}

const REPLAY_CAPACITY: usize = 100_000;

impl Simulator {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let ttl = chrono::Duration::hours(24);
        Self {
            authorizations: ReplayCache::new(REPLAY_CAPACITY, ttl, clock.clone()),
            increments: ReplayCache::new(REPLAY_CAPACITY, ttl, clock.clone()),
            captures: ReplayCache::new(REPLAY_CAPACITY, ttl, clock.clone()),
            voids: ReplayCache::new(REPLAY_CAPACITY, ttl, clock.clone()),
            refunds: ReplayCache::new(REPLAY_CAPACITY, ttl, clock.clone()),
            clock,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `op` once per idempotency key; replays get the stored outcome.
/// The state lock is held throughout, so concurrent replays cannot race.
fn once<T: Clone>(
    state: &mut State,
    cache: &ReplayCache<T>,
    key: &str,
    fp: [u8; 32],
    op: impl FnOnce(&mut State) -> Result<T, AcquirerError>,
) -> Result<T, AcquirerError> {
    check_idempotency_key(key)?;
    if let Some(stored) = cache.lookup(key, &fp)? {
        return stored;
    }
    let outcome = op(state);
    cache.store(key, fp, &outcome);
    outcome
}

fn same_currency(a: Money, b: Money) -> Result<(), AcquirerError> {
    if a.currency == b.currency {
        Ok(())
    } else {
        Err(AcquirerError::Invalid(InvalidReason::CurrencyMismatch))
    }
}

fn money_bytes(m: Money) -> Vec<u8> {
    format!("{}:{}", m.value, m.currency).into_bytes()
}

#[async_trait]
impl Acquirer for Simulator {
    fn name(&self) -> &'static str {
        "simulator"
    }

    fn supports_increment(&self) -> bool {
        true
    }

    async fn authorize(
        &self,
        request: AuthorizeRequest<'_>,
    ) -> Result<Authorization, AcquirerError> {
        check_positive(request.amount)?;
        let card = request.card;
        let behaviour = if card.expiry.is_expired_at(self.clock.now()) {
            Behaviour::Decline(DeclineCode::ExpiredCard)
        } else {
            behaviour(card.pan.expose_digits())
        };
        let last4 = card.pan.last4();
        let fp = fingerprint(&[
            b"authorize",
            &money_bytes(request.amount),
            request.reference.as_bytes(),
            last4.as_str().as_bytes(),
        ]);
        let amount = request.amount;
        let our_reference = request.reference.clone();
        let mut state = self.lock();
        once(
            &mut state,
            &self.authorizations,
            &request.idempotency_key,
            fp,
            |state| {
                let limit = match behaviour {
                    Behaviour::Approve => Ok(None),
                    Behaviour::ApproveUpTo(limit) if amount.value <= limit => Ok(Some(limit)),
                    Behaviour::ApproveUpTo(_) => Err(DeclineCode::InsufficientFunds),
                    Behaviour::Decline(code) => Err(code),
                    Behaviour::Timeout => return Err(AcquirerError::Timeout),
                    Behaviour::Fail => return Err(AcquirerError::Unavailable),
                };
                let reference = state.next_id("sim_auth");
                let authorization_code = format!("{:06}", state.next % 1_000_000);
                state.holds.insert(
                    reference.clone(),
                    Hold {
                        authorized: amount,
                        limit: limit.unwrap_or(None),
                        state: if limit.is_ok() {
                            HoldState::Authorized
                        } else {
                            HoldState::Failed
                        },
                        capture_ref: None,
                    },
                );
                state
                    .by_reference
                    .entry(our_reference)
                    .or_default()
                    .push(reference.clone());
                limit.map_err(AcquirerError::Declined)?;
                Ok(Authorization {
                    reference,
                    authorized: amount,
                    authorization_code: Some(authorization_code),
                    incremental: true,
                })
            },
        )
    }

    async fn increment(&self, request: IncrementRequest) -> Result<Money, AcquirerError> {
        check_positive(request.new_total)?;
        let fp = fingerprint(&[
            b"increment",
            request.auth_ref.as_bytes(),
            &money_bytes(request.new_total),
        ]);
        let mut state = self.lock();
        once(
            &mut state,
            &self.increments,
            &request.idempotency_key,
            fp,
            |state| {
                let hold = state
                    .holds
                    .get_mut(&request.auth_ref)
                    .ok_or(AcquirerError::Invalid(InvalidReason::UnknownReference))?;
                if hold.state != HoldState::Authorized {
                    return Err(AcquirerError::Invalid(InvalidReason::WrongState));
                }
                same_currency(hold.authorized, request.new_total)?;
                if request.new_total.value <= hold.authorized.value {
                    return Err(AcquirerError::Invalid(InvalidReason::IncrementNotHigher));
                }
                if hold.limit.is_some_and(|l| request.new_total.value > l) {
                    return Err(AcquirerError::Declined(DeclineCode::InsufficientFunds));
                }
                hold.authorized = request.new_total;
                Ok(request.new_total)
            },
        )
    }

    async fn capture(&self, request: CaptureRequest) -> Result<Capture, AcquirerError> {
        check_positive(request.amount)?;
        let fp = fingerprint(&[
            b"capture",
            request.auth_ref.as_bytes(),
            &money_bytes(request.amount),
        ]);
        let mut state = self.lock();
        once(
            &mut state,
            &self.captures,
            &request.idempotency_key,
            fp,
            |state| {
                let hold = state
                    .holds
                    .get(&request.auth_ref)
                    .ok_or(AcquirerError::Invalid(InvalidReason::UnknownReference))?;
                if hold.state != HoldState::Authorized {
                    return Err(AcquirerError::Invalid(InvalidReason::WrongState));
                }
                same_currency(hold.authorized, request.amount)?;
                if request.amount.value > hold.authorized.value {
                    return Err(AcquirerError::Invalid(
                        InvalidReason::CaptureExceedsAuthorization,
                    ));
                }
                let released = hold
                    .authorized
                    .checked_sub(request.amount)
                    .map_err(|_| AcquirerError::Invalid(InvalidReason::CurrencyMismatch))?;
                let reference = state.next_id("sim_cap");
                state
                    .captures
                    .insert(reference.clone(), request.auth_ref.clone());
                if let Some(hold) = state.holds.get_mut(&request.auth_ref) {
                    hold.state = HoldState::Captured {
                        captured: request.amount,
                        refunded: Money::zero(request.amount.currency),
                    };
                    hold.capture_ref = Some(reference.clone());
                }
                Ok(Capture {
                    reference,
                    captured: request.amount,
                    released,
                })
            },
        )
    }

    async fn void(&self, request: VoidRequest) -> Result<Void, AcquirerError> {
        let fp = fingerprint(&[b"void", request.auth_ref.as_bytes()]);
        let mut state = self.lock();
        once(
            &mut state,
            &self.voids,
            &request.idempotency_key,
            fp,
            |state| {
                let hold = state
                    .holds
                    .get_mut(&request.auth_ref)
                    .ok_or(AcquirerError::Invalid(InvalidReason::UnknownReference))?;
                if hold.state != HoldState::Authorized {
                    return Err(AcquirerError::Invalid(InvalidReason::WrongState));
                }
                hold.state = HoldState::Voided;
                Ok(Void {
                    reference: request.auth_ref.clone(),
                    released: hold.authorized,
                })
            },
        )
    }

    async fn refund(&self, request: RefundRequest) -> Result<Refund, AcquirerError> {
        check_positive(request.amount)?;
        let fp = fingerprint(&[
            b"refund",
            request.capture_ref.as_bytes(),
            &money_bytes(request.amount),
        ]);
        let mut state = self.lock();
        once(
            &mut state,
            &self.refunds,
            &request.idempotency_key,
            fp,
            |state| {
                let auth_ref = state
                    .captures
                    .get(&request.capture_ref)
                    .cloned()
                    .ok_or(AcquirerError::Invalid(InvalidReason::UnknownReference))?;
                let reference = state.next_id("sim_ref");
                let hold = state
                    .holds
                    .get_mut(&auth_ref)
                    .ok_or(AcquirerError::Invalid(InvalidReason::UnknownReference))?;
                let HoldState::Captured { captured, refunded } = hold.state else {
                    return Err(AcquirerError::Invalid(InvalidReason::WrongState));
                };
                same_currency(captured, request.amount)?;
                let refunded = refunded
                    .checked_add(request.amount)
                    .map_err(|_| AcquirerError::Invalid(InvalidReason::RefundExceedsCapture))?;
                if refunded.value > captured.value {
                    return Err(AcquirerError::Invalid(InvalidReason::RefundExceedsCapture));
                }
                hold.state = HoldState::Captured { captured, refunded };
                Ok(Refund {
                    reference,
                    refunded: request.amount,
                })
            },
        )
    }

    async fn find_hold(&self, lookup: HoldLookup<'_>) -> Result<Option<HoldStatus>, AcquirerError> {
        let state = self.lock();
        let found = match lookup {
            HoldLookup::AuthRef(auth_ref) => state.holds.get_key_value(auth_ref),
            HoldLookup::Reference(reference) => {
                let mut newest_first = state
                    .by_reference
                    .get(reference)
                    .into_iter()
                    .flatten()
                    .rev()
                    .filter_map(|auth_ref| state.holds.get_key_value(auth_ref));
                // A hold that was placed outranks declined attempts around it.
                let first = newest_first.clone().next();
                newest_first
                    .find(|(_, hold)| hold.state != HoldState::Failed)
                    .or(first)
            }
        };
        Ok(found.map(|(auth_ref, hold)| hold.status(auth_ref)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{Cvc, Expiry, Pan, luhn};
    use crate::clock::FixedClock;
    use crate::money::Currency;
    use crate::payments::connectors::OpenedCard;

    #[test]
    fn every_table_card_is_a_valid_pan() {
        for (number, _) in CARDS {
            assert!(luhn::passes(number.as_bytes()), "{number}");
            assert!(Pan::parse(number).is_ok(), "{number}");
        }
    }

    #[test]
    fn unknown_cards_approve() {
        assert_eq!(behaviour("4111111111111111"), Behaviour::Approve);
    }

    fn eur(value: i64) -> Money {
        Money::new(value, Currency::parse("EUR").unwrap())
    }

    fn sim() -> Simulator {
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp(1_790_000_000, 0).unwrap();
        Simulator::new(Arc::new(FixedClock::new(at)))
    }

    async fn authorize(
        sim: &Simulator,
        key: &str,
        reference: &str,
        number: &str,
        amount: Money,
    ) -> Result<Authorization, AcquirerError> {
        let pan = Pan::parse(number).unwrap();
        let cvc = Cvc::parse("123", pan.brand()).unwrap();
        let card = OpenedCard::new(pan, Expiry::new(12, 2030).unwrap(), Some(cvc));
        sim.authorize(AuthorizeRequest {
            idempotency_key: key.into(),
            amount,
            card: card.as_ref(),
            reference: reference.into(),
        })
        .await
    }

    /// Finds by both references and checks they agree.
    async fn find(sim: &Simulator, auth_ref: &str, reference: &str) -> HoldStatus {
        let by_auth = sim.find_hold(HoldLookup::AuthRef(auth_ref)).await.unwrap();
        let by_ours = sim
            .find_hold(HoldLookup::Reference(reference))
            .await
            .unwrap();
        assert_eq!(by_auth, by_ours);
        by_auth.unwrap()
    }

    #[tokio::test]
    async fn find_hold_follows_a_hold_through_capture_and_refunds() {
        let sim = sim();
        let auth = authorize(
            &sim,
            "k:authorize:0",
            "sess-1",
            "4242424242424242",
            eur(5000),
        )
        .await
        .unwrap();
        let status = find(&sim, &auth.reference, "sess-1").await;
        assert_eq!(
            status,
            HoldStatus {
                auth_ref: auth.reference.clone(),
                state: Reported::Authorized,
                authorized: eur(5000),
                captured: eur(0),
                capture_ref: None,
                refunded: eur(0),
            }
        );

        sim.increment(IncrementRequest {
            idempotency_key: "k:increment:0".into(),
            auth_ref: auth.reference.clone(),
            new_total: eur(7000),
        })
        .await
        .unwrap();
        assert_eq!(
            find(&sim, &auth.reference, "sess-1").await.authorized,
            eur(7000)
        );

        let capture = sim
            .capture(CaptureRequest {
                idempotency_key: "k:capture:0".into(),
                auth_ref: auth.reference.clone(),
                amount: eur(6500),
            })
            .await
            .unwrap();
        let status = find(&sim, &auth.reference, "sess-1").await;
        assert_eq!(status.state, Reported::Captured);
        assert_eq!(status.authorized, eur(7000));
        assert_eq!(status.captured, eur(6500));
        assert_eq!(
            status.capture_ref.as_deref(),
            Some(capture.reference.as_str())
        );
        assert_eq!(status.refunded, eur(0));

        for (key, amount) in [("k:refund:0", 1000), ("k:refund:1", 500)] {
            sim.refund(RefundRequest {
                idempotency_key: key.into(),
                capture_ref: capture.reference.clone(),
                amount: eur(amount),
            })
            .await
            .unwrap();
        }
        let status = find(&sim, &auth.reference, "sess-1").await;
        assert_eq!(status.state, Reported::Captured);
        assert_eq!(status.refunded, eur(1500));
    }

    #[tokio::test]
    async fn find_hold_sees_a_void() {
        let sim = sim();
        let auth = authorize(
            &sim,
            "k:authorize:0",
            "sess-2",
            "4242424242424242",
            eur(2500),
        )
        .await
        .unwrap();
        sim.void(VoidRequest {
            idempotency_key: "k:void:0".into(),
            auth_ref: auth.reference.clone(),
        })
        .await
        .unwrap();
        let status = find(&sim, &auth.reference, "sess-2").await;
        assert_eq!(status.state, Reported::Voided);
        assert_eq!(status.authorized, eur(2500));
        assert_eq!(status.captured, eur(0));
        assert_eq!(status.capture_ref, None);
    }

    #[tokio::test]
    async fn find_hold_reports_declines_as_failed_and_prefers_a_placed_hold() {
        let sim = sim();
        let declined = authorize(
            &sim,
            "k:authorize:0",
            "sess-3",
            "4000000000000002",
            eur(5000),
        )
        .await;
        assert_eq!(
            declined.unwrap_err(),
            AcquirerError::Declined(DeclineCode::CardDeclined)
        );
        let status = sim
            .find_hold(HoldLookup::Reference("sess-3"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.state, Reported::Failed);
        assert_eq!(status.authorized, eur(0));
        // Its reference was never handed out, so nothing can act on it.
        let err = sim
            .capture(CaptureRequest {
                idempotency_key: "k:capture:0".into(),
                auth_ref: status.auth_ref.clone(),
                amount: eur(100),
            })
            .await
            .unwrap_err();
        assert_eq!(err, AcquirerError::Invalid(InvalidReason::WrongState));

        // A second card for the same session is approved; a third is declined.
        let auth = authorize(
            &sim,
            "k:authorize:1",
            "sess-3",
            "4242424242424242",
            eur(5000),
        )
        .await
        .unwrap();
        authorize(
            &sim,
            "k:authorize:2",
            "sess-3",
            "4000000000009995",
            eur(5000),
        )
        .await
        .unwrap_err();
        let status = sim
            .find_hold(HoldLookup::Reference("sess-3"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.auth_ref, auth.reference);
        assert_eq!(status.state, Reported::Authorized);
    }

    #[tokio::test]
    async fn find_hold_does_not_know_what_never_arrived() {
        let sim = sim();
        for number in ["4000000000001018", "4000000000005001"] {
            authorize(&sim, "k:authorize:0", "sess-4", number, eur(5000))
                .await
                .unwrap_err();
        }
        assert_eq!(
            sim.find_hold(HoldLookup::Reference("sess-4")).await,
            Ok(None)
        );
        assert_eq!(
            sim.find_hold(HoldLookup::Reference("no-such-session"))
                .await,
            Ok(None)
        );
        assert_eq!(
            sim.find_hold(HoldLookup::AuthRef("sim_auth_999999")).await,
            Ok(None)
        );
    }
}
