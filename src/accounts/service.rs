//! Accounts over the store: create and read them, attach tokens and RFID
//! cards, and say who pays for a tap. Every change is audited before it
//! answers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Account, AccountKind, RfidCard, RfidStatus, RfidUid, check_email, check_name};
use crate::audit::{AuditError, AuditEvent, AuditSink, Outcome};
use crate::clock::Environment;
use crate::ids::{AccountId, TenantId};
use crate::paging::Cursor;
use crate::store::{Store, StoreError};
use crate::tokens::service::{Caller, CardSummary, TokenService, TokenServiceError};

pub const MAX_PAGE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}: {1}")]
    InvalidField(&'static str, &'static str),
    #[error("account: not found")]
    NotFound,
    #[error("payment method: the account has this token already")]
    MethodExists,
    #[error("payment method: the account has no such token")]
    MethodNotFound,
    #[error("rfid card: a card with this UID is registered already")]
    RfidExists,
    #[error("rfid card: the account has no such card")]
    RfidNotFound,
    /// A tap with a card nobody registered (here: in this tenant).
    #[error("rfid_uid: no such card")]
    RfidUnknown,
    #[error("rfid_uid: the card is blocked")]
    RfidBlocked,
    #[error("account_id: no such account")]
    PayerUnknown,
    #[error("payment_method: the account has no payment method")]
    NoPaymentMethod,
    #[error(transparent)]
    Tokens(#[from] TokenServiceError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AccountError::NotFound,
            e => AccountError::Store(e),
        }
    }
}

pub struct NewAccount {
    pub kind: AccountKind,
    pub name: String,
    pub email: Option<String>,
    pub fleet: Option<AccountId>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountView {
    #[schema(value_type = String)]
    pub id: AccountId,
    pub kind: AccountKind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub fleet_id: Option<AccountId>,
    /// The token a tap charges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_payment_method: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            kind: a.kind,
            name: a.name.clone(),
            email: a.email.clone(),
            fleet_id: a.fleet,
            default_payment_method: a.default_token.clone(),
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountPage {
    pub data: Vec<AccountView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A token on an account, with what may be shown of its card.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MethodView {
    pub token: String,
    /// Absent once the token was deleted: the account can no longer pay with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardSummary>,
    pub default: bool,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RfidView {
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub status: RfidStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&RfidCard> for RfidView {
    fn from(c: &RfidCard) -> Self {
        Self {
            uid: c.uid.as_str().to_owned(),
            label: c.label.clone(),
            status: c.status,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Who pays for a session started by a tap or for an account: the account,
/// and its default token if it has one (a session paid from the account's
/// wallet needs none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payer {
    pub account: AccountId,
    pub token: Option<String>,
}

/// The account behind an RFID card of `tenant`, and its default token. A
/// card of another tenant is unknown here, exactly like one never issued.
pub async fn payer_for_rfid(
    store: &dyn Store,
    tenant: TenantId,
    uid: &RfidUid,
) -> Result<Payer, AccountError> {
    let card = match store.rfid_card(tenant, uid).await {
        Ok(card) => card,
        Err(StoreError::NotFound) => return Err(AccountError::RfidUnknown),
        Err(e) => return Err(AccountError::Store(e)),
    };
    if card.status != RfidStatus::Active {
        return Err(AccountError::RfidBlocked);
    }
    payer_for_account(store, tenant, card.account).await
}

/// An account of `tenant` and its default token.
pub async fn payer_for_account(
    store: &dyn Store,
    tenant: TenantId,
    account: AccountId,
) -> Result<Payer, AccountError> {
    let account = match store.account(tenant, account).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => return Err(AccountError::PayerUnknown),
        Err(e) => return Err(AccountError::Store(e)),
    };
    Ok(Payer {
        account: account.id,
        token: account.default_token,
    })
}

pub struct AccountService {
    store: Arc<dyn Store>,
    tokens: Arc<TokenService>,
    audit: Arc<dyn AuditSink>,
    env: Environment,
}

impl AccountService {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<TokenService>,
        audit: Arc<dyn AuditSink>,
        env: Environment,
    ) -> Self {
        Self {
            store,
            tokens,
            audit,
            env,
        }
    }

    pub async fn create(
        &self,
        caller: &Caller,
        new: NewAccount,
    ) -> Result<AccountView, AccountError> {
        if !check_name(&new.name) {
            return Err(AccountError::InvalidField(
                "name",
                "1 to 200 printable characters, no surrounding spaces",
            ));
        }
        if new.email.as_deref().is_some_and(|e| !check_email(e)) {
            return Err(AccountError::InvalidField(
                "email",
                "one address, without spaces or commas",
            ));
        }
        if let Some(fleet) = new.fleet {
            if new.kind != AccountKind::Driver {
                return Err(AccountError::InvalidField(
                    "fleet_id",
                    "only a driver account belongs to a fleet",
                ));
            }
            match self.store.account(caller.tenant, fleet).await {
                Ok(f) if f.kind == AccountKind::Fleet => {}
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(AccountError::InvalidField(
                        "fleet_id",
                        "no fleet account of this tenant",
                    ));
                }
                Err(e) => return Err(AccountError::Store(e)),
            }
        }
        let account = Account {
            id: AccountId::generate(),
            tenant: caller.tenant,
            kind: new.kind,
            name: new.name,
            email: new.email,
            fleet: new.fleet,
            default_token: None,
            created_by: caller.actor_id.clone(),
            created_at: self.env.clock.now(),
        };
        self.store.insert_account(&account).await?;
        self.audit_change(caller, "account.create", format!("account:{}", account.id))
            .await?;
        Ok(AccountView::from(&account))
    }

    pub async fn get(&self, tenant: TenantId, id: AccountId) -> Result<AccountView, AccountError> {
        Ok(AccountView::from(&self.store.account(tenant, id).await?))
    }

    /// A page of the tenant's accounts, oldest first.
    pub async fn list(
        &self,
        tenant: TenantId,
        after: Option<(DateTime<Utc>, AccountId)>,
        limit: u32,
    ) -> Result<AccountPage, AccountError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut rows = self.store.accounts_page(tenant, after, limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = rows.last().filter(|_| more).map(|a| {
            Cursor {
                created_at: a.created_at,
                id: a.id,
            }
            .encode()
        });
        Ok(AccountPage {
            data: rows.iter().map(AccountView::from).collect(),
            next_cursor,
        })
    }

    /// Attaches a token of the same tenant; the first one becomes the default.
    pub async fn add_payment_method(
        &self,
        caller: &Caller,
        id: AccountId,
        token: &str,
        make_default: bool,
    ) -> Result<MethodView, AccountError> {
        let account = self.store.account(caller.tenant, id).await?;
        // Tenant-scoped: another tenant's token is unknown here.
        let view = self.tokens.get(caller, token).await?;
        let now = self.env.clock.now();
        match self
            .store
            .add_payment_method(account.id, &view.token, make_default, now)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(AccountError::MethodExists),
            Err(e) => return Err(e.into()),
        }
        self.audit_change(
            caller,
            "account.payment_method.add",
            format!("account:{}:token:{}", account.id, view.token),
        )
        .await?;
        let default = self
            .store
            .account(caller.tenant, id)
            .await?
            .default_token
            .as_deref()
            == Some(view.token.as_str());
        Ok(MethodView {
            token: view.token,
            card: Some(view.card),
            default,
            added_at: now,
        })
    }

    pub async fn remove_payment_method(
        &self,
        caller: &Caller,
        id: AccountId,
        token: &str,
    ) -> Result<(), AccountError> {
        let account = self.store.account(caller.tenant, id).await?;
        match self.store.remove_payment_method(account.id, token).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(AccountError::MethodNotFound),
            Err(e) => return Err(e.into()),
        }
        self.audit_change(
            caller,
            "account.payment_method.remove",
            format!("account:{}:token:{token}", account.id),
        )
        .await
    }

    pub async fn payment_methods(
        &self,
        caller: &Caller,
        id: AccountId,
    ) -> Result<Vec<MethodView>, AccountError> {
        let account = self.store.account(caller.tenant, id).await?;
        let mut out = Vec::new();
        for m in self.store.payment_methods(account.id).await? {
            let card = match self.tokens.get(caller, &m.token).await {
                Ok(view) => Some(view.card),
                Err(TokenServiceError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            out.push(MethodView {
                default: account.default_token.as_deref() == Some(m.token.as_str()),
                token: m.token,
                card,
                added_at: m.added_at,
            });
        }
        Ok(out)
    }

    pub async fn register_rfid(
        &self,
        caller: &Caller,
        id: AccountId,
        uid: &str,
        label: Option<String>,
    ) -> Result<RfidView, AccountError> {
        let uid = RfidUid::parse(uid).ok_or(AccountError::InvalidField(
            "uid",
            "an ISO 14443 UID: 4, 7 or 10 bytes in hex",
        ))?;
        if label.as_deref().is_some_and(|l| !check_name(l)) {
            return Err(AccountError::InvalidField(
                "label",
                "1 to 200 printable characters, no surrounding spaces",
            ));
        }
        let account = self.store.account(caller.tenant, id).await?;
        let now = self.env.clock.now();
        let card = RfidCard {
            tenant: caller.tenant,
            uid,
            account: account.id,
            label,
            status: RfidStatus::Active,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_rfid_card(&card).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(AccountError::RfidExists),
            Err(e) => return Err(e.into()),
        }
        self.audit_change(
            caller,
            "rfid.register",
            format!("account:{}:rfid:{}", account.id, card.uid.masked()),
        )
        .await?;
        Ok(RfidView::from(&card))
    }

    pub async fn rfid_cards(
        &self,
        tenant: TenantId,
        id: AccountId,
    ) -> Result<Vec<RfidView>, AccountError> {
        let account = self.store.account(tenant, id).await?;
        Ok(self
            .store
            .rfid_cards(account.id)
            .await?
            .iter()
            .map(RfidView::from)
            .collect())
    }

    /// A lost or stolen card: it starts no more sessions. The row stays, so
    /// the UID cannot be taken over by another account unnoticed.
    pub async fn block_rfid(
        &self,
        caller: &Caller,
        id: AccountId,
        uid: &str,
    ) -> Result<(), AccountError> {
        let uid = RfidUid::parse(uid).ok_or(AccountError::RfidNotFound)?;
        let account = self.store.account(caller.tenant, id).await?;
        let now = self.env.clock.now();
        match self
            .store
            .set_rfid_status(account.id, &uid, RfidStatus::Blocked, now)
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(AccountError::RfidNotFound),
            Err(e) => return Err(e.into()),
        }
        self.audit_change(
            caller,
            "rfid.block",
            format!("account:{}:rfid:{}", account.id, uid.masked()),
        )
        .await
    }

    async fn audit_change(
        &self,
        caller: &Caller,
        event_type: &str,
        resource: String,
    ) -> Result<(), AccountError> {
        self.audit
            .record(AuditEvent {
                event_type: event_type.into(),
                at: self.env.clock.now(),
                actor_kind: caller.actor_kind,
                actor_id: caller.actor_id.clone(),
                tenant: Some(caller.tenant),
                outcome: Outcome::Success,
                origin: caller.origin.clone(),
                resource: Some(resource),
                request_id: caller.request_id.clone(),
                reason: None,
            })
            .await?;
        Ok(())
    }
}
