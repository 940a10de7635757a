//! Prepaid wallets: an account's balance in one currency, topped up from a
//! token, from which its sessions may pay instead of a card (ADR 0009).
//!
//! The ledger (`wallet_entries`) is append-only and keyed by the operation's
//! idempotency key, so a retried top-up, hold, capture or refund is one
//! entry. Sessions reach the wallet through [`acquirer::WalletAcquirer`], so
//! the exactly-once intent machinery of payment sessions applies unchanged.

pub mod acquirer;
pub mod service;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::{AccountId, TenantId};
use crate::money::{Currency, Money};
use crate::notify::{EventType, OutboxEvent};

/// The name payment sessions paid from a wallet carry as their acquirer.
pub const WALLET_ACQUIRER: &str = "wallet";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub account: AccountId,
    pub tenant: TenantId,
    pub currency: Currency,
    /// Minor units; never negative (a CHECK in the database too).
    pub balance: i64,
    /// What open sessions hold; at most the balance.
    pub reserved: i64,
    pub low_balance_threshold: i64,
    /// Whether tap and account sessions pay from the wallet.
    pub pays_sessions: bool,
    /// A `wallet.low_balance` event was queued and no credit has lifted the
    /// balance back to the threshold since.
    pub low_balance_notified: bool,
    /// How many low-balance events were queued; numbers their ids.
    pub low_balance_notices: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Wallet {
    pub fn available(&self) -> i64 {
        self.balance - self.reserved
    }
}

/// What the configuration route sets.
#[derive(Debug, Clone)]
pub struct WalletSettings {
    pub account: AccountId,
    pub tenant: TenantId,
    pub currency: Currency,
    pub low_balance_threshold: i64,
    pub pays_sessions: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    TopUp,
    Hold,
    Increment,
    Capture,
    Release,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::TopUp => "top_up",
            EntryKind::Hold => "hold",
            EntryKind::Increment => "increment",
            EntryKind::Capture => "capture",
            EntryKind::Release => "release",
            EntryKind::Refund => "refund",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            EntryKind::TopUp,
            EntryKind::Hold,
            EntryKind::Increment,
            EntryKind::Capture,
            EntryKind::Release,
            EntryKind::Refund,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletEntry {
    pub kind: EntryKind,
    pub amount: i64,
    pub balance_after: i64,
    pub reserved_after: i64,
    /// The session or top-up it belongs to.
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletHoldState {
    Authorized,
    Captured,
    Voided,
}

impl WalletHoldState {
    pub fn as_str(self) -> &'static str {
        match self {
            WalletHoldState::Authorized => "authorized",
            WalletHoldState::Captured => "captured",
            WalletHoldState::Voided => "voided",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "authorized" => Some(WalletHoldState::Authorized),
            "captured" => Some(WalletHoldState::Captured),
            "voided" => Some(WalletHoldState::Voided),
            _ => None,
        }
    }
}

/// A session's reservation on a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletHold {
    pub id: String,
    pub account: AccountId,
    pub currency: Currency,
    /// The payment session id.
    pub reference: String,
    pub state: WalletHoldState,
    pub amount: i64,
    pub captured: i64,
    pub refunded: i64,
}

/// Why the ledger refused an operation; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerRefusal {
    NoWallet,
    InsufficientFunds,
    UnknownHold,
    WrongState,
    ExceedsHold,
    ExceedsCapture,
}

/// The id of a session's hold on a wallet: derived from the session, so
/// recovery can find it by the session alone.
pub fn hold_id(reference: &str) -> String {
    format!("wh_{reference}")
}

#[derive(Serialize)]
struct LowBalanceData {
    account_id: String,
    balance: Money,
    available: Money,
    low_balance_threshold: Money,
    currency: String,
}

/// The `wallet.low_balance` event for a wallet that just crossed below its
/// threshold. Its id carries the crossing's number, so each crossing is
/// queued once however often the write is retried. No card data, no token.
pub fn low_balance_event(wallet: &Wallet, at: DateTime<Utc>) -> Option<OutboxEvent> {
    crate::notify::events::tenant_event(
        wallet.tenant,
        format!(
            "evt_wallet_{}_low_{}",
            wallet.account, wallet.low_balance_notices
        ),
        EventType::WalletLowBalance,
        at,
        LowBalanceData {
            account_id: wallet.account.to_string(),
            balance: Money::new(wallet.balance, wallet.currency),
            available: Money::new(wallet.available(), wallet.currency),
            low_balance_threshold: Money::new(wallet.low_balance_threshold, wallet.currency),
            currency: wallet.currency.code().to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn wallet() -> Wallet {
        let now = now();
        Wallet {
            account: AccountId::generate(),
            tenant: TenantId::generate(),
            currency: Currency::parse("EUR").unwrap(),
            balance: 450,
            reserved: 100,
            low_balance_threshold: 500,
            pays_sessions: true,
            low_balance_notified: true,
            low_balance_notices: 2,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_low_balance_event_names_the_crossing_and_the_amounts() {
        let w = wallet();
        let e = low_balance_event(&w, now()).unwrap();
        assert_eq!(e.id, format!("evt_wallet_{}_low_2", w.account));
        assert_eq!(e.event_type, EventType::WalletLowBalance);
        let body: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(body["type"], "wallet.low_balance");
        assert_eq!(body["data"]["balance"]["value"], 450);
        assert_eq!(body["data"]["available"]["value"], 350);
        assert_eq!(body["data"]["low_balance_threshold"]["value"], 500);
        assert_eq!(body["data"]["currency"], "EUR");
    }

    #[test]
    fn entry_kinds_round_trip() {
        for k in [
            "top_up",
            "hold",
            "increment",
            "capture",
            "release",
            "refund",
        ] {
            assert_eq!(EntryKind::parse(k).unwrap().as_str(), k);
        }
        assert!(EntryKind::parse("withdrawal").is_none());
    }
}
