//! The EV payment session: its states, its acquirer calls (intents) and the
//! rules between them. Pure domain logic: no SQL, no HTTP, no acquirer.
//!
//! ```text
//! authorizing ──▶ authorized ──▶ charging ──▶ completing ──▶ completed ──▶ (refunds)
//!      │               │             │
//!      ▼               └──────┬──────┘
//!  declined | failed          ▼
//!                  cancelling ──▶ cancelled | expired
//! ```

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{PaymentSessionId, TenantId};
use crate::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// The hold was asked for; its outcome is not known yet.
    Authorizing,
    /// Held; no meter reading yet.
    Authorized,
    /// Meter readings are coming in.
    Charging,
    /// The capture was asked for; its outcome is not known yet.
    Completing,
    Completed,
    /// The release of the hold was asked for; its outcome is not known yet.
    Cancelling,
    Cancelled,
    /// Released because it was never completed in time.
    Expired,
    /// The acquirer declined the hold.
    Declined,
    /// No hold was placed (the acquirer failed or the card could not be used).
    Failed,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Authorizing => "authorizing",
            SessionStatus::Authorized => "authorized",
            SessionStatus::Charging => "charging",
            SessionStatus::Completing => "completing",
            SessionStatus::Completed => "completed",
            SessionStatus::Cancelling => "cancelling",
            SessionStatus::Cancelled => "cancelled",
            SessionStatus::Expired => "expired",
            SessionStatus::Declined => "declined",
            SessionStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_STATUSES.iter().copied().find(|st| st.as_str() == s)
    }

    /// A hold is in place and energy may flow.
    pub fn is_open(self) -> bool {
        matches!(self, SessionStatus::Authorized | SessionStatus::Charging)
    }
}

const ALL_STATUSES: [SessionStatus; 10] = [
    SessionStatus::Authorizing,
    SessionStatus::Authorized,
    SessionStatus::Charging,
    SessionStatus::Completing,
    SessionStatus::Completed,
    SessionStatus::Cancelling,
    SessionStatus::Cancelled,
    SessionStatus::Expired,
    SessionStatus::Declined,
    SessionStatus::Failed,
];

/// A payment session as stored. Money fields share the session's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSession {
    pub id: PaymentSessionId,
    pub tenant: TenantId,
    /// The principal that opened it.
    pub created_by: String,
    /// The Idempotency-Key of the request that opened it.
    pub idem_key: String,
    pub evse_id: String,
    pub connector_id: String,
    pub tariff_id: String,
    pub tariff_version: u32,
    /// The card, by token: sessions never hold card data.
    pub token: String,
    /// The account billed, for a session started by a tap or for an account.
    pub account: Option<crate::ids::AccountId>,
    /// The card tapped to start the session, if it was started by a tap.
    pub rfid: Option<crate::accounts::RfidUid>,
    pub acquirer: String,
    pub hold: Money,
    pub authorized: Money,
    pub cost: Money,
    /// Energy delivered so far (the last reading minus the first).
    pub energy_wh: i64,
    pub captured: Option<Money>,
    pub refunded: Money,
    pub status: SessionStatus,
    /// Once set, every meter answer says stop.
    pub stop_requested: bool,
    /// The acquirer allows raising this hold.
    pub incremental: bool,
    pub auth_ref: Option<String>,
    /// The issuer's approval code, where the acquirer passes it on.
    pub authorization_code: Option<String>,
    pub capture_ref: Option<String>,
    pub decline_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Bumped on every write; a write names the revision it read.
    pub revision: i64,
}

impl PaymentSession {
    /// What was held and not taken.
    pub fn released(&self) -> Option<Money> {
        match self.status {
            SessionStatus::Completed => self
                .captured
                .and_then(|c| self.authorized.checked_sub(c).ok()),
            SessionStatus::Cancelled | SessionStatus::Expired => Some(self.authorized),
            _ => None,
        }
    }

    /// What may still be refunded.
    pub fn refundable(&self) -> Money {
        self.captured
            .and_then(|c| c.checked_sub(self.refunded).ok())
            .unwrap_or(Money::zero(self.hold.currency))
    }

    /// The resource name in the audit trail.
    pub fn audit_resource(&self) -> String {
        audit_resource(self.id)
    }
}

pub fn audit_resource(id: PaymentSessionId) -> String {
    format!("payment_session:{id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentKind {
    Authorize,
    Increment,
    Capture,
    Void,
    Refund,
}

impl IntentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentKind::Authorize => "authorize",
            IntentKind::Increment => "increment",
            IntentKind::Capture => "capture",
            IntentKind::Void => "void",
            IntentKind::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            IntentKind::Authorize,
            IntentKind::Increment,
            IntentKind::Capture,
            IntentKind::Void,
            IntentKind::Refund,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentState {
    Pending,
    Succeeded,
    Failed,
}

impl IntentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Pending => "pending",
            IntentState::Succeeded => "succeeded",
            IntentState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            IntentState::Pending,
            IntentState::Succeeded,
            IntentState::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// An acquirer call, written before it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The acquirer's idempotency key: the same call always carries the same key.
    pub acquirer_key: String,
    pub session: PaymentSessionId,
    pub kind: IntentKind,
    /// The hold for authorize, the new total for increment, the amount for
    /// capture and refund, zero for void.
    pub amount: i64,
    pub state: IntentState,
    pub error_code: Option<String>,
    /// Why an operator refunded.
    pub reason: Option<String>,
    /// Who asked, and with which Idempotency-Key.
    pub idem_principal: Option<String>,
    pub idem_key: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

/// The acquirer key of a session's call. Authorize, capture and void happen
/// at most once per session; increments are numbered by the total they ask
/// for; refunds by the operator's Idempotency-Key (hashed, to keep it short).
pub fn acquirer_key(session: PaymentSessionId, kind: IntentKind, discriminator: &str) -> String {
    if discriminator.is_empty() {
        format!("vv_{}_{}", session.as_uuid().simple(), kind.as_str())
    } else {
        format!(
            "vv_{}_{}_{discriminator}",
            session.as_uuid().simple(),
            kind.as_str()
        )
    }
}

/// What the charger is told after a meter reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeterAction {
    Continue,
    Stop,
}

/// What to do about the hold after pricing a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldDecision {
    /// Enough headroom.
    Continue,
    /// Ask to raise the hold to this total (minor units).
    Increment(i64),
    /// The cost is at or near the hold and it cannot grow: stop charging.
    Stop,
}

/// The thresholds of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRules {
    /// Act when the cost reaches this share of the authorized amount.
    pub near_percent: u8,
    /// Never hold more than this in total (minor units).
    pub max_total: i64,
}

/// Decides, from the live cost, whether the hold suffices. The charger
/// is stopped before the cost can pass what is held: captures never exceed
/// the authorized amount.
pub fn hold_decision(session: &PaymentSession, cost: i64, rules: HoldRules) -> HoldDecision {
    let authorized = i128::from(session.authorized.value);
    if session.stop_requested || i128::from(cost) >= authorized {
        return HoldDecision::Stop;
    }
    let near = i128::from(cost) * 100 >= authorized * i128::from(rules.near_percent);
    if !near {
        return HoldDecision::Continue;
    }
    let next = session
        .authorized
        .value
        .saturating_add(session.hold.value)
        .min(rules.max_total);
    if session.incremental && next > session.authorized.value {
        HoldDecision::Increment(next)
    } else {
        HoldDecision::Stop
    }
}

/// The amount to capture: the cost, never more than what is held.
pub fn capture_amount(session: &PaymentSession) -> i64 {
    session.cost.value.clamp(0, session.authorized.value)
}

/// A short line for the charger's screen.
pub fn display_message(session: &PaymentSession, action: Option<MeterAction>) -> String {
    match session.status {
        SessionStatus::Authorizing => "Checking your card...".into(),
        SessionStatus::Authorized => "Card accepted. Start charging".into(),
        SessionStatus::Charging => match action {
            Some(MeterAction::Stop) => format!("Limit reached: {}. Please stop", session.cost),
            _ => format!("Charging: {}", session.cost),
        },
        SessionStatus::Completing => "Finishing payment...".into(),
        SessionStatus::Completed => format!(
            "Paid {}. Thank you",
            session.captured.unwrap_or(session.cost)
        ),
        SessionStatus::Cancelling | SessionStatus::Cancelled | SessionStatus::Expired => {
            "Payment cancelled".into()
        }
        SessionStatus::Declined => "Card declined".into(),
        SessionStatus::Failed => "Payment not possible".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn eur(v: i64) -> Money {
        Money::new(v, Currency::parse("EUR").unwrap())
    }

    fn session(authorized: i64, incremental: bool) -> PaymentSession {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        PaymentSession {
            id: PaymentSessionId::generate(),
            tenant: TenantId::generate(),
            created_by: "p".into(),
            idem_key: "k".into(),
            evse_id: "DE*ABC*E1".into(),
            connector_id: "1".into(),
            tariff_id: "t".into(),
            tariff_version: 1,
            token: "t".into(),
            account: None,
            rfid: None,
            acquirer: "simulator".into(),
            hold: eur(5000),
            authorized: eur(authorized),
            cost: eur(0),
            energy_wh: 0,
            captured: None,
            refunded: eur(0),
            status: SessionStatus::Charging,
            stop_requested: false,
            incremental,
            auth_ref: None,
            authorization_code: None,
            capture_ref: None,
            decline_code: None,
            created_at: now,
            updated_at: now,
            ended_at: None,
            revision: 0,
        }
    }

    const RULES: HoldRules = HoldRules {
        near_percent: 80,
        max_total: 15_000,
    };

    #[test]
    fn the_hold_grows_before_the_cost_reaches_it() {
        let s = session(5000, true);
        assert_eq!(hold_decision(&s, 3999, RULES), HoldDecision::Continue);
        assert_eq!(
            hold_decision(&s, 4000, RULES),
            HoldDecision::Increment(10_000)
        );
        // Never beyond the deployment's maximum.
        let s = session(12_000, true);
        assert_eq!(
            hold_decision(&s, 11_000, RULES),
            HoldDecision::Increment(15_000)
        );
        let s = session(15_000, true);
        assert_eq!(hold_decision(&s, 12_000, RULES), HoldDecision::Stop);
    }

    #[test]
    fn without_increments_the_charger_is_stopped() {
        let s = session(5000, false);
        assert_eq!(hold_decision(&s, 3999, RULES), HoldDecision::Continue);
        assert_eq!(hold_decision(&s, 4000, RULES), HoldDecision::Stop);
        let mut s = session(5000, true);
        s.stop_requested = true;
        assert_eq!(hold_decision(&s, 1, RULES), HoldDecision::Stop);
        // At or past the hold it is always stop.
        assert_eq!(
            hold_decision(&session(5000, true), 5000, RULES),
            HoldDecision::Stop
        );
    }

    #[test]
    fn captures_never_exceed_the_hold() {
        let mut s = session(5000, false);
        s.cost = eur(6120);
        assert_eq!(capture_amount(&s), 5000);
        s.cost = eur(1234);
        assert_eq!(capture_amount(&s), 1234);
    }

    #[test]
    fn names_round_trip() {
        for st in ALL_STATUSES {
            assert_eq!(SessionStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(IntentKind::parse("capture"), Some(IntentKind::Capture));
        assert_eq!(IntentState::parse("pending"), Some(IntentState::Pending));
        assert_eq!(SessionStatus::parse("nope"), None);
    }

    #[test]
    fn acquirer_keys_are_deterministic_and_distinct() {
        let id = PaymentSessionId::generate();
        let a = acquirer_key(id, IntentKind::Capture, "");
        assert_eq!(a, acquirer_key(id, IntentKind::Capture, ""));
        assert_ne!(a, acquirer_key(id, IntentKind::Void, ""));
        assert_ne!(
            acquirer_key(id, IntentKind::Increment, "10000"),
            acquirer_key(id, IntentKind::Increment, "15000")
        );
        assert!(a.bytes().all(|b| b.is_ascii_graphic()) && a.len() < 100);
    }
}
