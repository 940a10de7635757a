//! Wallets over the store and the configured acquirer: open and configure
//! one, read it with its latest entries, and top it up from a token. Every
//! change is audited before it answers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{EntryKind, Wallet, WalletEntry, WalletSettings};
use crate::audit::{AuditError, AuditEvent, AuditSink, Outcome};
use crate::clock::Environment;
use crate::idempotency::IdempotencyKey;
use crate::ids::AccountId;
use crate::money::{Currency, Money};
use crate::payments::connectors::{AcquirerError, CaptureRequest, Connector, VoidRequest};
use crate::payments::vault_card::VaultCard;
use crate::store::{Store, StoreError};
use crate::tokens::TokenCvcs;
use crate::tokens::service::{Caller, TokenService};

/// The largest single top-up and threshold, in minor units.
pub const MAX_AMOUNT: i64 = 10_000_000;
/// How many entries `GET .../wallet` shows.
pub const RECENT_ENTRIES: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("{0}: {1}")]
    InvalidField(&'static str, &'static str),
    #[error("account: not found")]
    AccountNotFound,
    #[error("wallet: the account has no wallet; open it with PUT first")]
    NoWallet,
    #[error("currency: the wallet holds money in another currency")]
    CurrencyFixed,
    #[error("amount.currency: the wallet is in {0}")]
    CurrencyMismatch(String),
    #[error("token: not a payment method of this account")]
    NotAMethod,
    #[error("payment_method: the account has no payment method")]
    NoPaymentMethod,
    #[error("top-ups are not available: no acquirer is configured")]
    NoAcquirer,
    /// The card was refused; nothing was credited.
    #[error("the acquirer refused: {}", .0.code())]
    Refused(AcquirerError),
    /// No answer from the acquirer: retry with the same Idempotency-Key.
    #[error("the acquirer did not answer; retry with the same Idempotency-Key")]
    Unknown,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<StoreError> for WalletError {
    fn from(e: StoreError) -> Self {
        WalletError::Store(e)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntryView {
    pub kind: EntryKind,
    pub amount: Money,
    pub balance_after: Money,
    pub reserved_after: Money,
    /// The payment session or top-up it belongs to.
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WalletView {
    #[schema(value_type = String)]
    pub account_id: AccountId,
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
    pub balance: Money,
    /// Held by open sessions.
    pub reserved: Money,
    /// What a new session or hold may use: balance less reserved.
    pub available: Money,
    pub low_balance_threshold: Money,
    /// Whether tap and account sessions pay from this wallet.
    pub pays_sessions: bool,
    /// The newest first.
    pub entries: Vec<EntryView>,
    pub updated_at: DateTime<Utc>,
}

impl WalletView {
    fn of(w: &Wallet, entries: &[WalletEntry]) -> Self {
        let money = |v| Money::new(v, w.currency);
        Self {
            account_id: w.account,
            currency: w.currency,
            balance: money(w.balance),
            reserved: money(w.reserved),
            available: money(w.available()),
            low_balance_threshold: money(w.low_balance_threshold),
            pays_sessions: w.pays_sessions,
            entries: entries
                .iter()
                .map(|e| EntryView {
                    kind: e.kind,
                    amount: money(e.amount),
                    balance_after: money(e.balance_after),
                    reserved_after: money(e.reserved_after),
                    reference: e.reference.clone(),
                    created_at: e.created_at,
                })
                .collect(),
            updated_at: w.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopUpView {
    /// Derived from the Idempotency-Key: a retry is the same top-up.
    pub top_up_id: String,
    pub amount: Money,
    /// The token charged.
    pub token: String,
    pub wallet: WalletView,
}

pub struct WalletConfig {
    pub currency: Currency,
    pub low_balance_threshold: i64,
    pub pays_sessions: bool,
}

pub struct WalletService {
    store: Arc<dyn Store>,
    /// The configured acquirer, which top-ups charge; none without one.
    connector: Option<Connector>,
    tokens: Arc<TokenService>,
    cvcs: Arc<TokenCvcs>,
    audit: Arc<dyn AuditSink>,
    env: Environment,
}

impl WalletService {
    pub fn new(
        store: Arc<dyn Store>,
        connector: Option<Connector>,
        tokens: Arc<TokenService>,
        cvcs: Arc<TokenCvcs>,
        audit: Arc<dyn AuditSink>,
        env: Environment,
    ) -> Self {
        Self {
            store,
            connector,
            tokens,
            cvcs,
            audit,
            env,
        }
    }

    /// Opens the account's wallet or changes its settings.
    pub async fn configure(
        &self,
        caller: &Caller,
        id: AccountId,
        config: WalletConfig,
    ) -> Result<WalletView, WalletError> {
        if !(0..=MAX_AMOUNT).contains(&config.low_balance_threshold) {
            return Err(WalletError::InvalidField(
                "low_balance_threshold",
                "0 to 10000000 minor units",
            ));
        }
        let account = self.account(caller, id).await?;
        let settings = WalletSettings {
            account: account.id,
            tenant: account.tenant,
            currency: config.currency,
            low_balance_threshold: config.low_balance_threshold,
            pays_sessions: config.pays_sessions,
            at: self.env.clock.now(),
        };
        let wallet = match self.store.configure_wallet(&settings).await {
            Ok(w) => w,
            Err(StoreError::Conflict(_)) => return Err(WalletError::CurrencyFixed),
            Err(e) => return Err(e.into()),
        };
        self.audit_change(
            caller,
            "wallet.configure",
            format!("account:{}:wallet", account.id),
            format!(
                "currency={};low_balance_threshold={};pays_sessions={}",
                wallet.currency, wallet.low_balance_threshold, wallet.pays_sessions
            ),
        )
        .await?;
        self.view(&wallet).await
    }

    pub async fn get(&self, caller: &Caller, id: AccountId) -> Result<WalletView, WalletError> {
        let account = self.account(caller, id).await?;
        let wallet = self.wallet(account.id).await?;
        self.view(&wallet).await
    }

    /// Charges `amount` to the token (or the account's default): hold, then
    /// capture, each with a key derived from the request's Idempotency-Key;
    /// the wallet is credited once the capture succeeded, once per top-up.
    pub async fn top_up(
        &self,
        caller: &Caller,
        id: AccountId,
        idem_key: &IdempotencyKey,
        amount: Money,
        token: Option<String>,
    ) -> Result<TopUpView, WalletError> {
        if !(1..=MAX_AMOUNT).contains(&amount.value) {
            return Err(WalletError::InvalidField(
                "amount.value",
                "1 to 10000000 minor units",
            ));
        }
        let account = self.account(caller, id).await?;
        let wallet = self.wallet(account.id).await?;
        if amount.currency != wallet.currency {
            return Err(WalletError::CurrencyMismatch(
                wallet.currency.code().to_owned(),
            ));
        }
        let token = match token {
            Some(t) => {
                let methods = self.store.payment_methods(account.id).await?;
                if !methods.iter().any(|m| m.token == t) {
                    return Err(WalletError::NotAMethod);
                }
                t
            }
            None => account.default_token.ok_or(WalletError::NoPaymentMethod)?,
        };
        let connector = self.connector.as_ref().ok_or(WalletError::NoAcquirer)?;
        let top_up_id = top_up_id(caller, idem_key);
        let card = VaultCard {
            tokens: self.tokens.clone(),
            cvcs: self.cvcs.clone(),
            tenant: caller.tenant,
            token: token.clone(),
        };
        let auth = connector
            .authorize(
                &format!("vv_topup_{top_up_id}_authorize"),
                amount,
                &top_up_id,
                &card,
            )
            .await
            .map_err(acquirer_error);
        let auth = match auth {
            Ok(a) => a,
            Err(e) => {
                self.audit_top_up(caller, account.id, &top_up_id, amount, Some(&e))
                    .await?;
                return Err(e);
            }
        };
        let captured = connector
            .capture(CaptureRequest {
                idempotency_key: format!("vv_topup_{top_up_id}_capture"),
                auth_ref: auth.reference.clone(),
                amount,
            })
            .await;
        if let Err(e) = captured {
            let e = acquirer_error(e);
            if matches!(e, WalletError::Refused(_)) {
                // Refused for certain: give the hold back; a retry starts over.
                let _ = connector
                    .void(VoidRequest {
                        idempotency_key: format!("vv_topup_{top_up_id}_void"),
                        auth_ref: auth.reference.clone(),
                    })
                    .await;
            }
            self.audit_top_up(caller, account.id, &top_up_id, amount, Some(&e))
                .await?;
            return Err(e);
        }
        let now = self.env.clock.now();
        let wallet = match self
            .store
            .credit_wallet(
                account.id,
                &format!("top_up:{top_up_id}"),
                amount.value,
                &top_up_id,
                now,
            )
            .await?
        {
            Ok(w) => w,
            Err(_) => return Err(WalletError::NoWallet),
        };
        self.audit_top_up(caller, account.id, &top_up_id, amount, None)
            .await?;
        Ok(TopUpView {
            top_up_id,
            amount,
            token,
            wallet: self.view(&wallet).await?,
        })
    }

    async fn account(
        &self,
        caller: &Caller,
        id: AccountId,
    ) -> Result<crate::accounts::Account, WalletError> {
        match self.store.account(caller.tenant, id).await {
            Ok(a) => Ok(a),
            Err(StoreError::NotFound) => Err(WalletError::AccountNotFound),
            Err(e) => Err(e.into()),
        }
    }

    async fn wallet(&self, id: AccountId) -> Result<Wallet, WalletError> {
        match self.store.wallet(id).await {
            Ok(w) => Ok(w),
            Err(StoreError::NotFound) => Err(WalletError::NoWallet),
            Err(e) => Err(e.into()),
        }
    }

    async fn view(&self, wallet: &Wallet) -> Result<WalletView, WalletError> {
        let entries = self
            .store
            .wallet_entries(wallet.account, RECENT_ENTRIES)
            .await?;
        Ok(WalletView::of(wallet, &entries))
    }

    async fn audit_top_up(
        &self,
        caller: &Caller,
        account: AccountId,
        top_up_id: &str,
        amount: Money,
        failed: Option<&WalletError>,
    ) -> Result<(), WalletError> {
        let reason = match failed {
            None => format!("amount={};currency={}", amount.value, amount.currency),
            Some(WalletError::Refused(e)) => {
                format!("{};amount={}", e.code(), amount.value)
            }
            Some(_) => format!("outcome_unknown;amount={}", amount.value),
        };
        let mut event = self.event(
            caller,
            "wallet.top_up",
            format!("account:{account}:top_up:{top_up_id}"),
            reason,
        );
        if failed.is_some() {
            event.outcome = Outcome::Failure;
        }
        self.audit.record(event).await?;
        Ok(())
    }

    async fn audit_change(
        &self,
        caller: &Caller,
        event_type: &str,
        resource: String,
        reason: String,
    ) -> Result<(), WalletError> {
        let event = self.event(caller, event_type, resource, reason);
        self.audit.record(event).await?;
        Ok(())
    }

    fn event(
        &self,
        caller: &Caller,
        event_type: &str,
        resource: String,
        reason: String,
    ) -> AuditEvent {
        AuditEvent {
            event_type: event_type.into(),
            at: self.env.clock.now(),
            actor_kind: caller.actor_kind,
            actor_id: caller.actor_id.clone(),
            tenant: Some(caller.tenant),
            outcome: Outcome::Success,
            origin: caller.origin.clone(),
            resource: Some(resource),
            request_id: caller.request_id.clone(),
            reason: Some(reason),
        }
    }
}

fn acquirer_error(e: AcquirerError) -> WalletError {
    match e {
        AcquirerError::Timeout | AcquirerError::Unavailable => WalletError::Unknown,
        e => WalletError::Refused(e),
    }
}

/// 16 hex digits of SHA-256 over who asked and their key: the same request
/// again is the same top-up, at the acquirer and in the ledger.
fn top_up_id(caller: &Caller, key: &IdempotencyKey) -> String {
    let input = format!("{}\n{}\n{}", caller.tenant, caller.actor_id, key.as_str());
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    format!("tu_{}", hex::encode(&digest.as_ref()[..8]))
}
