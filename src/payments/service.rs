//! Payment sessions on top of the store, the vault and one acquirer.
//!
//! Exactly once: every acquirer call is first written as an intent whose
//! key is the acquirer's idempotency key, in the same transaction as the
//! session's new state. If the answer is lost (timeout, crash), the intent
//! stays pending and [`PaymentService::recover`] settles it later by asking
//! the acquirer what happened before it sends anything again. A session has
//! at most one call in flight (a database constraint), and every write names
//! the revision it read, so two nodes never both act on one session.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::connectors::{
    AcquirerError, Authorization, Capture, CaptureRequest, Connector, HoldLookup, HoldState,
    IncrementRequest, Refund, RefundRequest, VoidRequest,
};
use super::session::{
    HoldDecision, HoldRules, Intent, IntentKind, IntentState, MeterAction, PaymentSession,
    SessionStatus, acquirer_key, capture_amount, display_message, hold_decision,
};
use super::tariffs::{TariffBook, TariffBookError};
use super::vault_card::VaultCard;
use crate::accounts::service::{AccountError, Payer, payer_for_account, payer_for_rfid};
use crate::audit::{ActorKind, AuditError, AuditEvent, AuditSink, Outcome};
use crate::billing::pricing::{MeterReading, PricingError, price_session};
use crate::card::Cvc;
use crate::clock::Environment;
use crate::idempotency::{IdempotencyKey, IdempotencyScope};
use crate::ids::PaymentSessionId;
use crate::money::Money;
use crate::store::payments::{SessionWrite, Settle, StoredReading};
use crate::store::{Store, StoreError};
use crate::tokens::TokenCvcs;
use crate::tokens::service::{Caller, TokenService, TokenServiceError, TokenizeRequest};
use crate::wallets::WALLET_ACQUIRER;
use crate::wallets::acquirer::WalletAcquirer;

/// Limits of a deployment.
#[derive(Debug, Clone, Copy)]
pub struct PaymentSettings {
    pub rules: HoldRules,
    /// The largest first hold a charger may ask for (minor units).
    pub max_hold: i64,
    /// How long the node that wrote an intent owns it before recovery may.
    pub lease: chrono::Duration,
    /// Holds not completed within this time are released.
    pub max_session_age: chrono::Duration,
    /// How often a live-cost stream reads its session for writes made on
    /// other nodes.
    pub events_poll: std::time::Duration,
}

pub enum PaymentMethod {
    Token(String),
    /// A card read at the charger or typed into the app: tokenized first.
    Card {
        request: TokenizeRequest,
        cvc: Option<Cvc>,
    },
    /// A tap at the charger: the card's account pays with its default token.
    Rfid(crate::accounts::RfidUid),
    /// The app starts a session for an account: its default token pays.
    Account(crate::ids::AccountId),
}

pub struct CreateSession {
    pub evse_id: String,
    pub connector_id: String,
    pub tariff_id: String,
    pub method: PaymentMethod,
    pub hold: Money,
}

#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub energy_wh: i64,
    pub at: DateTime<Utc>,
}

/// What callers see of a session: amounts and a line for the charger's screen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    #[schema(value_type = String, format = Uuid)]
    pub id: PaymentSessionId,
    pub status: SessionStatus,
    pub evse_id: String,
    pub connector_id: String,
    pub tariff_id: String,
    /// The card, by token.
    pub token: String,
    /// The account billed, for a tap or an account session.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub account_id: Option<crate::ids::AccountId>,
    pub hold: Money,
    pub authorized_amount: Money,
    /// The live cost, VAT included.
    pub cost: Money,
    pub energy_wh: i64,
    /// After a meter reading: keep charging or stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<MeterAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_amount: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_amount: Option<Money>,
    pub refunded_amount: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    pub display_message: String,
    /// The receipt of a completed session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

impl SessionView {
    pub fn of(s: &PaymentSession, action: Option<MeterAction>) -> Self {
        Self {
            id: s.id,
            status: s.status,
            evse_id: s.evse_id.clone(),
            connector_id: s.connector_id.clone(),
            tariff_id: s.tariff_id.clone(),
            token: s.token.clone(),
            account_id: s.account,
            hold: s.hold,
            authorized_amount: s.authorized,
            cost: s.cost,
            energy_wh: s.energy_wh,
            action,
            captured_amount: s.captured,
            released_amount: s.released(),
            refunded_amount: s.refunded,
            decline_code: s.decline_code.clone(),
            display_message: display_message(s, action),
            receipt_id: (s.status == SessionStatus::Completed).then(|| format!("rcpt_{}", s.id)),
            created_at: s.created_at,
            ended_at: s.ended_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Tokens(#[from] TokenServiceError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("tariff_id: no such tariff")]
    UnknownTariff,
    #[error("hold.currency: the tariff charges in {0}")]
    CurrencyMismatch(String),
    #[error("hold.value: must be between 1 and {0} minor units")]
    HoldOutOfRange(i64),
    #[error("{0}: {1}")]
    InvalidField(&'static str, &'static str),
    #[error("payment_method: {0} payments are not available in this deployment")]
    MethodUnavailable(&'static str),
    #[error("payment session: not found")]
    NotFound,
    #[error("payment session: not possible while it is {}", .0.as_str())]
    WrongState(SessionStatus),
    #[error("payment session: another request is changing it; retry")]
    Busy,
    #[error(transparent)]
    Pricing(#[from] PricingError),
    #[error("amount: {0}")]
    Refund(&'static str),
    #[error("the acquirer refused: {}", .0.code())]
    Acquirer(AcquirerError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<TariffBookError> for PaymentError {
    fn from(e: TariffBookError) -> Self {
        match e {
            TariffBookError::NotFound => PaymentError::UnknownTariff,
            TariffBookError::Store(e) => PaymentError::Store(e),
            TariffBookError::Audit(e) => PaymentError::Audit(e),
            // A stored version that no longer parses, or a race: a fault here.
            _ => PaymentError::Store(StoreError::Internal),
        }
    }
}

impl From<StoreError> for PaymentError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => PaymentError::NotFound,
            StoreError::Conflict(_) => PaymentError::Busy,
            other => PaymentError::Store(other),
        }
    }
}

/// What an acquirer call came to.
enum CallResult {
    Authorized(Authorization),
    Incremented(Money),
    Captured(Capture),
    Voided,
    Refunded(Refund),
    /// A definite failure: nothing happened at the acquirer.
    Failed(AcquirerError),
    /// No answer: it may or may not have happened; recovery will find out.
    Unknown,
}

/// Who caused a step, for the audit trail.
#[derive(Clone)]
enum Actor<'a> {
    Caller(&'a Caller),
    System,
}

pub struct PaymentService {
    store: Arc<dyn Store>,
    connector: Connector,
    /// Sessions of accounts that pay from their wallet go here instead.
    wallet: Arc<WalletAcquirer>,
    wallet_connector: Connector,
    tokens: Arc<TokenService>,
    cvcs: Arc<TokenCvcs>,
    tariffs: Arc<TariffBook>,
    audit: Arc<dyn AuditSink>,
    env: Environment,
    settings: PaymentSettings,
    /// Told about completed sessions (and ready receipts) and failed
    /// payments (authorization, capture or release) after they are written.
    notifier: Arc<dyn crate::notify::Notifier>,
    /// Wakes this node's live-cost streams after each write.
    changes: Arc<super::changes::SessionChanges>,
}

impl PaymentService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        connector: Connector,
        tokens: Arc<TokenService>,
        cvcs: Arc<TokenCvcs>,
        tariffs: Arc<TariffBook>,
        audit: Arc<dyn AuditSink>,
        env: Environment,
        settings: PaymentSettings,
    ) -> Self {
        let wallet = Arc::new(WalletAcquirer::new(store.clone(), env.clock.clone()));
        let wallet_connector = Connector::new(wallet.clone(), audit.clone(), env.clock.clone());
        Self {
            store,
            connector,
            wallet,
            wallet_connector,
            tokens,
            cvcs,
            tariffs,
            audit,
            env,
            settings,
            notifier: Arc::new(crate::notify::NoNotifier),
            changes: Arc::default(),
        }
    }

    /// A watch that wakes when `id` is written on this node (for the
    /// live-cost stream).
    pub fn watch(&self, id: PaymentSessionId) -> super::changes::SessionWatch {
        self.changes.watch(id)
    }

    /// How often a live-cost stream reads its session anyway.
    pub fn events_poll(&self) -> std::time::Duration {
        self.settings.events_poll
    }

    /// Sends session events (completed, payment failed) to `notifier`.
    pub fn with_notifier(mut self, notifier: Arc<dyn crate::notify::Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// A wallet capture queues `wallet.low_balance` for webhooks in its own
    /// transaction; this tells the notifier too (for the owner's e-mail).
    /// The event id names the crossing, so telling it again changes nothing.
    async fn tell_low_balance(&self, session: &PaymentSession, now: DateTime<Utc>) {
        let (Some(account), true) = (
            session.account,
            session.acquirer == crate::wallets::WALLET_ACQUIRER,
        ) else {
            return;
        };
        match self.store.wallet(account).await {
            Ok(wallet) if wallet.low_balance_notified => {
                if let Some(event) = crate::wallets::low_balance_event(&wallet, now) {
                    self.notifier.notify(event).await;
                }
            }
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(%account, "wallet unreadable after a capture; no low-balance mail")
            }
        }
    }

    /// Opens a session and asks for the hold. A retry with the same
    /// Idempotency-Key finds the session it opened instead of a second hold.
    pub async fn create(
        &self,
        caller: &Caller,
        idem_key: &IdempotencyKey,
        request: CreateSession,
    ) -> Result<SessionView, PaymentError> {
        if let Some(existing) = self.opened_with(caller, idem_key).await? {
            return Ok(SessionView::of(&existing, None));
        }
        check_label("evse_id", &request.evse_id)?;
        check_label("connector_id", &request.connector_id)?;
        let tariff = self
            .tariffs
            .current(caller.tenant, &request.tariff_id)
            .await?;
        if tariff.currency() != request.hold.currency {
            return Err(PaymentError::CurrencyMismatch(
                tariff.currency().code().to_owned(),
            ));
        }
        if request.hold.value < 1 || request.hold.value > self.settings.max_hold {
            return Err(PaymentError::HoldOutOfRange(self.settings.max_hold));
        }
        let mut account = None;
        let mut rfid = None;
        let mut from_wallet = false;
        let token = match request.method {
            PaymentMethod::Token(token) => {
                self.tokens.get(caller, &token).await?;
                token
            }
            PaymentMethod::Rfid(uid) => {
                let payer = payer_for_rfid(self.store.as_ref(), caller.tenant, &uid).await?;
                account = Some(payer.account);
                rfid = Some(uid);
                let (token, wallet) = self.pay_with(payer, request.hold.currency).await?;
                from_wallet = wallet;
                token
            }
            PaymentMethod::Account(id) => {
                let payer = payer_for_account(self.store.as_ref(), caller.tenant, id).await?;
                account = Some(payer.account);
                let (token, wallet) = self.pay_with(payer, request.hold.currency).await?;
                from_wallet = wallet;
                token
            }
            PaymentMethod::Card { request, cvc } => {
                let (view, _) = self.tokens.tokenize(caller, request).await?;
                if let Some(cvc) = cvc {
                    self.cvcs
                        .put((caller.tenant, view.token.clone()), cvc)
                        .map_err(|_| PaymentError::MethodUnavailable("cvc"))?;
                }
                view.token
            }
        };
        let now = self.env.clock.now();
        let zero = Money::zero(request.hold.currency);
        let session = PaymentSession {
            id: PaymentSessionId::generate(),
            tenant: caller.tenant,
            created_by: caller.actor_id.clone(),
            idem_key: idem_key.as_str().to_owned(),
            evse_id: request.evse_id,
            connector_id: request.connector_id,
            tariff_id: request.tariff_id,
            tariff_version: tariff.version(),
            token,
            account,
            rfid,
            acquirer: if from_wallet {
                WALLET_ACQUIRER.to_owned()
            } else {
                self.connector.name().to_owned()
            },
            hold: request.hold,
            authorized: zero,
            cost: zero,
            energy_wh: 0,
            captured: None,
            refunded: zero,
            status: SessionStatus::Authorizing,
            stop_requested: false,
            incremental: false,
            auth_ref: None,
            authorization_code: None,
            capture_ref: None,
            decline_code: None,
            created_at: now,
            updated_at: now,
            ended_at: None,
            revision: 0,
        };
        let intent = self.intent(
            &session,
            IntentKind::Authorize,
            "",
            request.hold.value,
            Some(caller),
            Some(idem_key),
        );
        match self.store.create_payment_session(&session, &intent).await {
            Ok(()) => {}
            // The same key raced us from another node: answer with its session.
            Err(StoreError::Conflict(_)) => {
                if let Some(existing) = self.opened_with(caller, idem_key).await? {
                    return Ok(SessionView::of(&existing, None));
                }
                return Err(PaymentError::Busy);
            }
            Err(e) => return Err(e.into()),
        }
        let result = self.call(&session, &intent).await;
        let session = self
            .apply(session, &intent, result, Actor::Caller(caller))
            .await?;
        Ok(SessionView::of(&session, None))
    }

    pub async fn get(
        &self,
        caller: &Caller,
        id: PaymentSessionId,
    ) -> Result<SessionView, PaymentError> {
        let s = self.session_for(caller, id).await?;
        let action = s.status.is_open().then(|| self.action_now(&s));
        Ok(SessionView::of(&s, action))
    }

    /// Prices a cumulative meter reading and says whether to keep charging,
    /// raising the hold first when the cost nears it and the card allows.
    pub async fn meter(
        &self,
        caller: &Caller,
        id: PaymentSessionId,
        reading: Reading,
    ) -> Result<SessionView, PaymentError> {
        let mut session = self.session_for(caller, id).await?;
        if !session.status.is_open() {
            return Err(PaymentError::WrongState(session.status));
        }
        let Some((stored, cost)) = self.price_with(&session, reading).await? else {
            // The same reading again (a retry): the same answer.
            return Ok(SessionView::of(&session, Some(self.action_now(&session))));
        };
        session.cost = cost.0;
        session.energy_wh = cost.1;
        session.status = SessionStatus::Charging;
        session.updated_at = self.env.clock.now();
        match hold_decision(&session, session.cost.value, self.settings.rules) {
            HoldDecision::Continue => {
                self.write(&session, None, None, Some(stored)).await?;
                Ok(SessionView::of(&session, Some(MeterAction::Continue)))
            }
            HoldDecision::Stop => {
                session.stop_requested = true;
                self.write(&session, None, None, Some(stored)).await?;
                Ok(SessionView::of(&session, Some(MeterAction::Stop)))
            }
            HoldDecision::Increment(total) => {
                let intent = self.intent(
                    &session,
                    IntentKind::Increment,
                    &total.to_string(),
                    total,
                    Some(caller),
                    None,
                );
                let (session, _) = self
                    .run_intent(session, &intent, Some(stored), Actor::Caller(caller))
                    .await?;
                let action = self.action_now(&session);
                Ok(SessionView::of(&session, Some(action)))
            }
        }
    }

    /// Takes the final reading, captures the cost (never more than held)
    /// and releases the rest. A session that cost nothing releases it all.
    pub async fn complete(
        &self,
        caller: &Caller,
        id: PaymentSessionId,
        idem_key: &IdempotencyKey,
        reading: Option<Reading>,
    ) -> Result<SessionView, PaymentError> {
        let mut session = self.session_for(caller, id).await?;
        match session.status {
            SessionStatus::Completed | SessionStatus::Completing => {
                return Ok(SessionView::of(&session, None));
            }
            s if !s.is_open() => return Err(PaymentError::WrongState(s)),
            _ => {}
        }
        let mut stored = None;
        if let Some(reading) = reading
            && let Some((row, cost)) = self.price_with(&session, reading).await?
        {
            session.cost = cost.0;
            session.energy_wh = cost.1;
            stored = Some(row);
        }
        let amount = capture_amount(&session);
        session.status = SessionStatus::Completing;
        session.updated_at = self.env.clock.now();
        let intent = if amount > 0 {
            self.intent(
                &session,
                IntentKind::Capture,
                "",
                amount,
                Some(caller),
                Some(idem_key),
            )
        } else {
            self.intent(
                &session,
                IntentKind::Void,
                "",
                0,
                Some(caller),
                Some(idem_key),
            )
        };
        let (session, _) = self
            .run_intent(session, &intent, stored, Actor::Caller(caller))
            .await?;
        Ok(SessionView::of(&session, None))
    }

    /// Releases the hold of a session that has not completed.
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: PaymentSessionId,
        idem_key: &IdempotencyKey,
    ) -> Result<SessionView, PaymentError> {
        let session = self.session_for(caller, id).await?;
        match session.status {
            SessionStatus::Cancelled | SessionStatus::Cancelling => {
                Ok(SessionView::of(&session, None))
            }
            s if s.is_open() => {
                let session = self
                    .release(
                        session,
                        SessionStatus::Cancelling,
                        Actor::Caller(caller),
                        Some(idem_key),
                    )
                    .await?;
                Ok(SessionView::of(&session, None))
            }
            s => Err(PaymentError::WrongState(s)),
        }
    }

    /// Gives back part or all of a capture. The operator's Idempotency-Key
    /// names the refund at the acquirer, so a retry is the same refund.
    pub async fn refund(
        &self,
        caller: &Caller,
        id: PaymentSessionId,
        idem_key: &IdempotencyKey,
        amount: Option<Money>,
        reason: String,
    ) -> Result<SessionView, PaymentError> {
        if reason.trim().is_empty() || reason.len() > 200 {
            return Err(PaymentError::InvalidField("reason", "1 to 200 characters"));
        }
        let mut session = self.session_for(caller, id).await?;
        let discriminator = short_hash(idem_key.as_str());
        let key = acquirer_key(session.id, IntentKind::Refund, &discriminator);
        match self.store.payment_intent(&key).await {
            Ok(done) if done.state == IntentState::Failed => {
                return Err(PaymentError::Refund("the acquirer refused this refund"));
            }
            Ok(_) => return Ok(SessionView::of(&session, None)),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        if session.status != SessionStatus::Completed {
            return Err(PaymentError::WrongState(session.status));
        }
        let refundable = session.refundable();
        let amount = amount.unwrap_or(refundable);
        if amount.currency != session.hold.currency {
            return Err(PaymentError::Refund("currency differs from the session's"));
        }
        if amount.value < 1 || amount.value > refundable.value {
            return Err(PaymentError::Refund(
                "must be positive and at most what was captured and not yet refunded",
            ));
        }
        session.updated_at = self.env.clock.now();
        let mut intent = self.intent(
            &session,
            IntentKind::Refund,
            &discriminator,
            amount.value,
            Some(caller),
            Some(idem_key),
        );
        intent.reason = Some(reason);
        let (session, failed) = self
            .run_intent(session, &intent, None, Actor::Caller(caller))
            .await?;
        match failed {
            Some(e) => Err(PaymentError::Acquirer(e)),
            None => Ok(SessionView::of(&session, None)),
        }
    }

    /// Releases holds never completed within the configured time; returns how many.
    pub async fn expire_due(&self) -> Result<u64, PaymentError> {
        let before = self.env.clock.now() - self.settings.max_session_age;
        let due = self.store.open_payment_sessions_before(before, 100).await?;
        let mut n = 0;
        for session in due {
            match self
                .release(session, SessionStatus::Cancelling, Actor::System, None)
                .await
            {
                Ok(_) => n += 1,
                // Another node took it, or it changed meanwhile.
                Err(PaymentError::Busy) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Settles intents whose answer was lost (their lease ran out): asks the
    /// acquirer where the hold stands, and only sends the call again when it
    /// did not happen and sending it is safe. Returns how many were settled.
    pub async fn recover(&self) -> Result<u64, PaymentError> {
        let now = self.env.clock.now();
        let claimed = self
            .store
            .claim_stale_intents(now, now + self.settings.lease, 50)
            .await?;
        let mut settled = 0;
        for intent in claimed {
            let session = self
                .store
                .payment_session_for_worker(intent.session)
                .await?;
            let result = self.reconcile(&session, &intent).await;
            if matches!(result, CallResult::Unknown) {
                continue;
            }
            let scope = idem_scope(&session, &intent);
            match self.apply(session, &intent, result, Actor::System).await {
                Ok(_) => settled += 1,
                Err(PaymentError::Busy) => continue,
                Err(e) => return Err(e),
            }
            // The request that wrote the intent never answered; its key was
            // left claimed. Release it: a retry now finds the settled session.
            if let Some(scope) = scope {
                self.store.abandon_idempotent(&scope).await?;
            }
        }
        Ok(settled)
    }

    async fn reconcile(&self, session: &PaymentSession, intent: &Intent) -> CallResult {
        let id = session.id.to_string();
        let lookup = match &session.auth_ref {
            Some(auth_ref) => HoldLookup::AuthRef(auth_ref),
            None => HoldLookup::Reference(&id),
        };
        let hold = match self.connector_for(session).find_hold(lookup).await {
            Ok(hold) => hold,
            Err(_) => return CallResult::Unknown,
        };
        let currency = session.hold.currency;
        match (intent.kind, hold) {
            (IntentKind::Authorize, Some(h)) if h.state == HoldState::Authorized => {
                CallResult::Authorized(Authorization {
                    reference: h.auth_ref,
                    authorized: h.authorized,
                    authorization_code: None,
                    // Unknown after a lost answer: assume not, and stop near the hold.
                    incremental: false,
                })
            }
            (IntentKind::Authorize, _) => CallResult::Failed(AcquirerError::Unavailable),
            (IntentKind::Increment, Some(h)) if h.authorized.value >= intent.amount => {
                CallResult::Incremented(h.authorized)
            }
            (IntentKind::Increment, _) => CallResult::Failed(AcquirerError::Unavailable),
            (IntentKind::Capture, Some(h)) if h.state == HoldState::Captured => {
                CallResult::Captured(Capture {
                    reference: h.capture_ref.unwrap_or(h.auth_ref),
                    captured: h.captured,
                    released: h
                        .authorized
                        .checked_sub(h.captured)
                        .unwrap_or(Money::zero(currency)),
                })
            }
            (IntentKind::Void, Some(h)) if h.state == HoldState::Voided => CallResult::Voided,
            // Still held: the capture or release never happened; send it again.
            (IntentKind::Capture | IntentKind::Void, Some(h))
                if h.state == HoldState::Authorized =>
            {
                self.call(session, intent).await
            }
            (IntentKind::Capture | IntentKind::Void, _) => CallResult::Failed(
                AcquirerError::Invalid(super::connectors::InvalidReason::WrongState),
            ),
            (IntentKind::Refund, Some(h))
                if h.refunded.value >= session.refunded.value.saturating_add(intent.amount) =>
            {
                CallResult::Refunded(Refund {
                    reference: h.auth_ref,
                    refunded: Money::new(intent.amount, currency),
                })
            }
            (IntentKind::Refund, Some(_)) => self.call(session, intent).await,
            (IntentKind::Refund, None) => CallResult::Failed(AcquirerError::Invalid(
                super::connectors::InvalidReason::UnknownReference,
            )),
        }
    }

    /// Asks for the hold to be released (cancel, or expiry).
    async fn release(
        &self,
        mut session: PaymentSession,
        status: SessionStatus,
        actor: Actor<'_>,
        idem_key: Option<&IdempotencyKey>,
    ) -> Result<PaymentSession, PaymentError> {
        session.status = status;
        session.updated_at = self.env.clock.now();
        let caller = match &actor {
            Actor::Caller(c) => Some(*c),
            Actor::System => None,
        };
        let mut intent = self.intent(&session, IntentKind::Void, "", 0, caller, idem_key);
        if caller.is_none() {
            intent.reason = Some("expired".into());
        }
        let (session, _) = self.run_intent(session, &intent, None, actor).await?;
        Ok(session)
    }

    /// Writes the session with a new intent, makes the call, and writes
    /// what it came to. Returns the session and, when the acquirer refused
    /// for certain, why.
    async fn run_intent(
        &self,
        mut session: PaymentSession,
        intent: &Intent,
        reading: Option<StoredReading>,
        actor: Actor<'_>,
    ) -> Result<(PaymentSession, Option<AcquirerError>), PaymentError> {
        self.write(&session, None, Some(intent), reading).await?;
        session.revision += 1;
        let result = self.call(&session, intent).await;
        let refused = match &result {
            CallResult::Failed(e) => Some(*e),
            _ => None,
        };
        let session = self.apply(session, intent, result, actor).await?;
        Ok((session, refused))
    }

    /// Makes the acquirer call an intent stands for.
    async fn call(&self, session: &PaymentSession, intent: &Intent) -> CallResult {
        let key = intent.acquirer_key.clone();
        let currency = session.hold.currency;
        let auth_ref = session.auth_ref.clone().unwrap_or_default();
        let connector = self.connector_for(session);
        let outcome = match intent.kind {
            IntentKind::Authorize if session.acquirer == WALLET_ACQUIRER => match session.account {
                Some(account) => self
                    .wallet
                    .reserve(
                        &key,
                        Money::new(intent.amount, currency),
                        &session.id.to_string(),
                        account,
                    )
                    .await
                    .map(CallResult::Authorized),
                None => Err(AcquirerError::Invalid(
                    super::connectors::InvalidReason::UnknownReference,
                )),
            },
            IntentKind::Authorize => {
                let card = VaultCard {
                    tokens: self.tokens.clone(),
                    cvcs: self.cvcs.clone(),
                    tenant: session.tenant,
                    token: session.token.clone(),
                };
                self.connector
                    .authorize(
                        &key,
                        Money::new(intent.amount, currency),
                        &session.id.to_string(),
                        &card,
                    )
                    .await
                    .map(CallResult::Authorized)
            }
            IntentKind::Increment => connector
                .increment(IncrementRequest {
                    idempotency_key: key,
                    auth_ref,
                    new_total: Money::new(intent.amount, currency),
                })
                .await
                .map(CallResult::Incremented),
            IntentKind::Capture => connector
                .capture(CaptureRequest {
                    idempotency_key: key,
                    auth_ref,
                    amount: Money::new(intent.amount, currency),
                })
                .await
                .map(CallResult::Captured),
            IntentKind::Void => connector
                .void(VoidRequest {
                    idempotency_key: key,
                    auth_ref,
                })
                .await
                .map(|_| CallResult::Voided),
            IntentKind::Refund => connector
                .refund(RefundRequest {
                    idempotency_key: key,
                    capture_ref: session.capture_ref.clone().unwrap_or_default(),
                    amount: Money::new(intent.amount, currency),
                })
                .await
                .map(CallResult::Refunded),
        };
        match outcome {
            Ok(result) => result,
            // The call may have reached the acquirer: only recovery may say.
            Err(AcquirerError::Timeout | AcquirerError::Unavailable) => CallResult::Unknown,
            Err(e) => CallResult::Failed(e),
        }
    }

    /// Writes what a call came to, with the intent settled, then audits it.
    async fn apply(
        &self,
        mut session: PaymentSession,
        intent: &Intent,
        result: CallResult,
        actor: Actor<'_>,
    ) -> Result<PaymentSession, PaymentError> {
        let now = self.env.clock.now();
        let currency = session.hold.currency;
        let mut state = IntentState::Succeeded;
        let mut error_code: Option<&'static str> = None;
        match result {
            CallResult::Unknown => {
                if intent.kind == IntentKind::Increment {
                    // Whatever happened, the charger stops until it is known.
                    session.stop_requested = true;
                    session.updated_at = now;
                    self.write(&session, None, None, None).await?;
                    session.revision += 1;
                }
                self.audit_step(
                    &session,
                    intent,
                    Outcome::Failure,
                    Some("outcome_unknown"),
                    &actor,
                )
                .await?;
                return Ok(session);
            }
            CallResult::Authorized(a) => {
                session.status = SessionStatus::Authorized;
                session.authorized = a.authorized;
                session.auth_ref = Some(a.reference);
                session.authorization_code = a.authorization_code;
                session.incremental =
                    a.incremental && self.connector_for(&session).supports_increment();
            }
            CallResult::Incremented(total) => session.authorized = total,
            CallResult::Captured(c) => {
                session.status = SessionStatus::Completed;
                session.captured = Some(c.captured);
                session.capture_ref = Some(c.reference);
                session.ended_at = Some(now);
            }
            CallResult::Voided => {
                session.status = match (session.status, intent.reason.as_deref()) {
                    (_, Some("expired")) => SessionStatus::Expired,
                    // A session that cost nothing completes by releasing the hold.
                    (SessionStatus::Completing, _) => {
                        session.captured = Some(Money::zero(currency));
                        SessionStatus::Completed
                    }
                    _ => SessionStatus::Cancelled,
                };
                session.ended_at = Some(now);
            }
            CallResult::Refunded(r) => {
                session.refunded = session
                    .refunded
                    .checked_add(r.refunded)
                    .unwrap_or(session.refunded);
            }
            CallResult::Failed(e) => {
                state = IntentState::Failed;
                error_code = Some(e.code());
                match intent.kind {
                    IntentKind::Authorize => {
                        session.status = match e {
                            AcquirerError::Declined(_) => SessionStatus::Declined,
                            _ => SessionStatus::Failed,
                        };
                        session.decline_code = e.decline_code().map(|d| d.code().to_owned());
                        session.ended_at = Some(now);
                    }
                    IntentKind::Increment => session.stop_requested = true,
                    IntentKind::Capture | IntentKind::Void => {
                        session.status = SessionStatus::Failed;
                        session.ended_at = Some(now);
                    }
                    IntentKind::Refund => {}
                }
            }
        }
        session.updated_at = now;
        let settle = Settle {
            acquirer_key: &intent.acquirer_key,
            state,
            error_code,
            at: now,
        };
        self.write(&session, Some(settle), None, None).await?;
        session.revision += 1;
        // After the write, never instead of it: a lost event costs a
        // notification, not a payment (see notify::OutboxNotifier).
        for event in crate::notify::events::after_step(&session, intent.kind, error_code, now) {
            self.notifier.notify(event).await;
        }
        if intent.kind == IntentKind::Capture {
            self.tell_low_balance(&session, now).await;
        }
        let outcome = if state == IntentState::Succeeded {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.audit_step(&session, intent, outcome, error_code, &actor)
            .await?;
        Ok(session)
    }

    /// The acquirer a session's calls go to: its wallet, or the configured one.
    fn connector_for(&self, session: &PaymentSession) -> &Connector {
        if session.acquirer == WALLET_ACQUIRER {
            &self.wallet_connector
        } else {
            &self.connector
        }
    }

    /// What an account's session pays with: its wallet when the account
    /// set it to, else its default token. Returns the token to record and
    /// whether the wallet pays.
    async fn pay_with(
        &self,
        payer: Payer,
        currency: crate::money::Currency,
    ) -> Result<(String, bool), PaymentError> {
        match self.store.wallet(payer.account).await {
            Ok(w) if w.pays_sessions => {
                if w.currency != currency {
                    return Err(PaymentError::InvalidField(
                        "hold.currency",
                        "the account's wallet is in another currency",
                    ));
                }
                // No card: the session names the wallet it pays from.
                return Ok((format!("wallet_{}", payer.account), true));
            }
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let token = payer.token.ok_or(AccountError::NoPaymentMethod)?;
        Ok((token, false))
    }

    async fn write(
        &self,
        session: &PaymentSession,
        settle: Option<Settle<'_>>,
        open_intent: Option<&Intent>,
        reading: Option<StoredReading>,
    ) -> Result<(), PaymentError> {
        self.store
            .write_payment_session(SessionWrite {
                session,
                settle,
                open_intent,
                reading,
            })
            .await?;
        self.changes.changed(session.id);
        Ok(())
    }

    fn intent(
        &self,
        session: &PaymentSession,
        kind: IntentKind,
        discriminator: &str,
        amount: i64,
        caller: Option<&Caller>,
        idem_key: Option<&IdempotencyKey>,
    ) -> Intent {
        let now = self.env.clock.now();
        Intent {
            acquirer_key: acquirer_key(session.id, kind, discriminator),
            session: session.id,
            kind,
            amount,
            state: IntentState::Pending,
            error_code: None,
            reason: None,
            idem_principal: idem_key.and(caller.map(|c| c.actor_id.clone())),
            idem_key: idem_key.map(|k| k.as_str().to_owned()),
            attempts: 0,
            created_at: now,
            updated_at: now,
            lease_until: now + self.settings.lease,
        }
    }

    /// A session the caller may act on: any of its tenant's, except that a
    /// charger sees only the sessions it opened itself.
    async fn session_for(
        &self,
        caller: &Caller,
        id: PaymentSessionId,
    ) -> Result<PaymentSession, PaymentError> {
        let session = self.store.payment_session(caller.tenant, id).await?;
        if caller.actor_kind == ActorKind::Charger && session.created_by != caller.actor_id {
            return Err(PaymentError::NotFound);
        }
        Ok(session)
    }

    async fn opened_with(
        &self,
        caller: &Caller,
        idem_key: &IdempotencyKey,
    ) -> Result<Option<PaymentSession>, PaymentError> {
        match self
            .store
            .payment_session_by_key(caller.tenant, &caller.actor_id, idem_key.as_str())
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The reading to store and the cost (VAT included) and energy with it;
    /// `None` if it repeats the last reading.
    async fn price_with(
        &self,
        session: &PaymentSession,
        reading: Reading,
    ) -> Result<Option<(StoredReading, (Money, i64))>, PaymentError> {
        if reading.energy_wh < 0 {
            return Err(PaymentError::InvalidField(
                "energy_wh",
                "must not be negative",
            ));
        }
        let stored = self.store.meter_readings(session.id).await?;
        if let Some(last) = stored.last() {
            if last.at == reading.at && last.energy_wh == reading.energy_wh {
                return Ok(None);
            }
            if reading.at < last.at {
                return Err(PricingError::OutOfOrder(stored.len()).into());
            }
            if reading.energy_wh < last.energy_wh {
                return Err(PricingError::MeterWentBackwards(stored.len()).into());
            }
        }
        let tariff = self
            .tariffs
            .version(session.tenant, &session.tariff_id, session.tariff_version)
            .await?;
        let mut readings: Vec<MeterReading> = stored
            .iter()
            .map(|r| MeterReading::new(r.at, r.energy_wh))
            .collect();
        readings.push(MeterReading::new(reading.at, reading.energy_wh));
        let cost = price_session(&tariff, &readings)?;
        let first = readings.first().map_or(reading.energy_wh, |r| r.energy_wh);
        let seq = i32::try_from(stored.len()).map_err(|_| PaymentError::Busy)?;
        Ok(Some((
            StoredReading {
                seq,
                at: reading.at,
                energy_wh: reading.energy_wh,
            },
            (cost.incl_vat, reading.energy_wh - first),
        )))
    }

    fn action_now(&self, s: &PaymentSession) -> MeterAction {
        if s.stop_requested || s.cost.value >= s.authorized.value {
            MeterAction::Stop
        } else {
            MeterAction::Continue
        }
    }

    async fn audit_step(
        &self,
        session: &PaymentSession,
        intent: &Intent,
        outcome: Outcome,
        reason: Option<&str>,
        actor: &Actor<'_>,
    ) -> Result<(), AuditError> {
        let event_type = format!("payment.{}", intent.kind.as_str());
        let at = self.env.clock.now();
        let mut event = match actor {
            Actor::Caller(c) => AuditEvent {
                event_type,
                at,
                actor_kind: c.actor_kind,
                actor_id: c.actor_id.clone(),
                tenant: Some(session.tenant),
                outcome,
                origin: c.origin.clone(),
                resource: None,
                request_id: c.request_id.clone(),
                reason: None,
            },
            Actor::System => {
                AuditEvent::system(&event_type, at, outcome).with_tenant(session.tenant)
            }
        }
        .with_resource(session.audit_resource());
        let detail = match (reason, intent.reason.as_deref()) {
            (Some(r), _) => Some(format!("{r};amount={}", intent.amount)),
            (None, Some(why)) if intent.kind != IntentKind::Refund => Some(why.to_owned()),
            _ => Some(format!("amount={}", intent.amount)),
        };
        if let Some(detail) = detail {
            event = event.with_reason(detail);
        }
        self.audit.record(event).await
    }
}

fn idem_scope(session: &PaymentSession, intent: &Intent) -> Option<IdempotencyScope> {
    let principal = intent.idem_principal.clone()?;
    let key = IdempotencyKey::parse(intent.idem_key.as_deref()?).ok()?;
    Some(IdempotencyScope {
        tenant: session.tenant,
        principal,
        key,
    })
}

/// EVSE and connector ids (OCPI/eMI3 style): short, printable, no spaces.
fn check_label(field: &'static str, value: &str) -> Result<(), PaymentError> {
    if (1..=48).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(PaymentError::InvalidField(
            field,
            "1 to 48 visible ASCII characters",
        ))
    }
}

/// 16 hex digits of SHA-256: short enough for an acquirer key.
fn short_hash(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    hex::encode(&digest.as_ref()[..8])
}
