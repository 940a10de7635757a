//! Tokenize, read, detokenize and delete: the token domain on top of the
//! store and the key layer. Every call that touches card data is audited
//! before it answers, and fails if the audit write fails.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use zeroize::Zeroizing;

use super::ff1::{Ff1Tokenizer, Ff1Tweak};
use super::{KeptDigits, TokenError, TokenFormat, TokenValue, random};
use crate::audit::{ActorKind, AuditError, AuditEvent, AuditSink, Outcome, PendingAudit};
use crate::card::{Card, CardError, Expiry, Pan};
use crate::clock::Environment;
use crate::idempotency::IdempotencyScope;
use crate::ids::TenantId;
use crate::keys::{KeyError, KeyManager, SealedRecord};
use crate::secret::{SecretBytes, SecretString};
use crate::store::joined::{IdempotentResponse, JoinedOutcome, JoinedRows};
use crate::store::tokens::{StoredToken, TokenPolicy};
use crate::store::{Store, StoreError};

/// How many fresh random tokens to try when a value is already taken.
const MAX_CANDIDATES: usize = 16;

/// Who is asking, for the audit trail.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub actor_kind: ActorKind,
    pub actor_id: String,
    pub origin: Option<String>,
    pub request_id: Option<String>,
}

/// What a tokenize request commits with its token, in the same transaction
/// and the same group commit as its audit events (ADR 0008).
#[derive(Default)]
pub struct Alongside<'a> {
    /// Events the request produced earlier and has not made durable yet
    /// (its authentication); committed with the tokenize event.
    pub pending: Option<&'a PendingAudit>,
    /// The idempotency key's record, holding the answer a replay gets.
    pub idempotent: Option<IdempotentReply<'a>>,
}

/// An idempotency key to complete with the request's answer.
pub struct IdempotentReply<'a> {
    pub scope: IdempotencyScope,
    pub request_hash: [u8; 32],
    /// The answer (status, body) for the token this request returns; `None`
    /// if it cannot be encoded.
    pub render: &'a RenderAnswer,
}

/// Renders a tokenize answer as (status, body).
pub type RenderAnswer = dyn Fn(&TokenView) -> Option<(u16, Vec<u8>)> + Send + Sync;

/// A card to tokenize. The CVC never comes here: it goes to the CVC vault.
pub struct TokenizeRequest {
    pub card: Card,
    pub holder_name: Option<String>,
    pub format: TokenFormat,
    pub expires_at: Option<DateTime<Utc>>,
    pub metadata: Option<serde_json::Value>,
}

/// What anyone allowed to see a token may see: never the PAN.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub token: String,
    pub format: String,
    pub card: CardSummary,
    /// Keyed fingerprint of the card number (HMAC in the HSM), the same for
    /// the same card within a tenant: recognizes a returning card.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
    pub bin: Option<String>,
    pub exp_month: u8,
    pub exp_year: u16,
}

/// A card back in clear, for the few callers granted detokenize.
pub struct Detokenized {
    pub number: SecretString,
    pub holder_name: Option<SecretString>,
    pub expiry: Expiry,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenServiceError {
    #[error(transparent)]
    Card(#[from] CardError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("token: not found")]
    NotFound,
    #[error("token: deleted")]
    Deleted,
    /// The card's FF1 token value is held by a deleted token or by another
    /// token of the tenant; FF1 has no second value to offer.
    #[error("format: this card's ff1 token value is already taken in this tenant")]
    Ff1Taken,
    #[error("metadata: {0}")]
    Metadata(&'static str),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("could not find a free token value")]
    Exhausted,
    /// The request's idempotency key was stored by another request
    /// meanwhile; nothing of this one was kept.
    #[error("the idempotency key was used meanwhile")]
    IdempotencyKeyTaken,
}

impl From<StoreError> for TokenServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => TokenServiceError::NotFound,
            other => TokenServiceError::Store(other),
        }
    }
}

pub struct TokenService {
    store: Arc<dyn Store>,
    keys: Arc<KeyManager>,
    audit: Arc<dyn AuditSink>,
    env: Environment,
}

impl TokenService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyManager>,
        audit: Arc<dyn AuditSink>,
        env: Environment,
    ) -> Self {
        Self {
            store,
            keys,
            audit,
            env,
        }
    }

    /// Stores the card and returns its token; for a deterministic tenant, a
    /// card seen before returns its existing token (`false` in the pair).
    pub async fn tokenize(
        &self,
        caller: &Caller,
        request: TokenizeRequest,
    ) -> Result<(TokenView, bool), TokenServiceError> {
        self.tokenize_with(caller, request, &Alongside::default())
            .await
    }

    /// [`TokenService::tokenize`], committing `along` with the token row and
    /// the tokenize event: the answer waits for one durable commit.
    pub async fn tokenize_with(
        &self,
        caller: &Caller,
        request: TokenizeRequest,
        along: &Alongside<'_>,
    ) -> Result<(TokenView, bool), TokenServiceError> {
        check_metadata(request.metadata.as_ref())?;
        let tenant = caller.tenant;
        let policy = self.store.token_policy(tenant).await?;
        let pan = &request.card.pan;
        let fingerprint = self
            .keys
            .fingerprint(&tenant.to_string(), pan.expose_digits().as_bytes())
            .await?;
        if policy.deterministic
            && let Some(existing) = self
                .store
                .token_by_fingerprint(tenant, &fingerprint)
                .await?
        {
            let view = view(&existing);
            let event = self.event(caller, "token.tokenize", Outcome::Success, &existing.token);
            return match self.commit(along, None, &view, event).await? {
                JoinedOutcome::Written => Ok((view, false)),
                _ => Err(TokenServiceError::IdempotencyKeyTaken),
            };
        }
        let plaintext = encode_card(pan, request.holder_name.as_deref());
        let keep = kept_digits(policy);
        let now = self.env.clock.now();
        // FF1 defines one token value per card; the card itself is still
        // sealed and stored, and detokenize reads that record as for random
        // tokens.
        let ff1 = match request.format {
            TokenFormat::Random => None,
            TokenFormat::Ff1 => Some(self.ff1_token(tenant, pan, keep).await?),
        };
        let attempts = if ff1.is_some() { 1 } else { MAX_CANDIDATES };
        for _ in 0..attempts {
            let token = match &ff1 {
                Some(value) => value.clone(),
                None => random::random_token(pan, keep, self.env.random.as_ref())?,
            };
            let sealed = self
                .keys
                .seal(&tenant.to_string(), token.as_str(), &plaintext)
                .await?;
            let stored = StoredToken {
                tenant,
                token: token.as_str().to_owned(),
                format: request.format.as_str().into(),
                brand: pan.brand().as_str().to_owned(),
                last4: pan.last4().as_str().to_owned(),
                bin: if policy.keep_bin {
                    pan.bin().map(|b| b.as_str().to_owned())
                } else {
                    None
                },
                exp_month: request.card.expiry.month(),
                exp_year: request.card.expiry.year(),
                fingerprint,
                sealed: Some(sealed),
                metadata: request.metadata.clone(),
                created_at: now,
                expires_at: request.expires_at,
                deleted_at: None,
            };
            let made = view(&stored);
            let event = self.event(caller, "token.tokenize", Outcome::Success, &stored.token);
            match self.commit(along, Some(&stored), &made, event).await? {
                JoinedOutcome::Written => return Ok((made, true)),
                JoinedOutcome::TokenTaken if ff1.is_some() => {
                    return self.ff1_existing(caller, &stored, along).await;
                }
                JoinedOutcome::TokenTaken => continue,
                JoinedOutcome::IdempotencyKeyTaken => {
                    return Err(TokenServiceError::IdempotencyKeyTaken);
                }
            }
        }
        Err(TokenServiceError::Exhausted)
    }

    /// Makes the request's rows and events durable together: through the
    /// audit writer's transaction when the sink joins rows, else the token
    /// INSERT and then the events (a sink without a database, in benches).
    async fn commit(
        &self,
        along: &Alongside<'_>,
        token: Option<&StoredToken>,
        made: &TokenView,
        event: AuditEvent,
    ) -> Result<JoinedOutcome, TokenServiceError> {
        let mut events = along.pending.map(PendingAudit::peek).unwrap_or_default();
        let earlier = events.len();
        events.push(event);
        let outcome = if self.audit.joins_rows() {
            let idempotent = match &along.idempotent {
                Some(reply) => {
                    let (status, body) = (reply.render)(made)
                        .ok_or(TokenServiceError::Store(StoreError::Internal))?;
                    Some(IdempotentResponse {
                        scope: reply.scope.clone(),
                        request_hash: reply.request_hash,
                        status,
                        body,
                        at: self.env.clock.now(),
                    })
                }
                None => None,
            };
            let rows = JoinedRows {
                idempotent,
                token: token.cloned(),
            };
            self.audit.commit_joined(rows, events).await?
        } else {
            // Nothing here could store the answer with the token: refuse
            // rather than answer a request whose replay would differ.
            if along.idempotent.is_some() {
                tracing::error!("an idempotent tokenize needs an audit sink that joins rows");
                return Err(TokenServiceError::Store(StoreError::Internal));
            }
            if let Some(token) = token {
                match self.store.insert_token(token).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict(_)) => return Ok(JoinedOutcome::TokenTaken),
                    Err(e) => return Err(e.into()),
                }
            }
            self.audit.record_all(events).await?;
            JoinedOutcome::Written
        };
        if outcome == JoinedOutcome::Written
            && let Some(pending) = along.pending
        {
            pending.committed(earlier);
        }
        Ok(outcome)
    }

    /// The FF1 token of `pan` under the tenant's FF1 key, tweaked by the
    /// tenant id (and, inside the format, the clear digits). The kept
    /// digits follow the tenant's policy like random tokens, which always
    /// leaves at least six digits to encrypt: FF1's 10^6 minimum domain.
    async fn ff1_token(
        &self,
        tenant: TenantId,
        pan: &Pan,
        keep: KeptDigits,
    ) -> Result<TokenValue, TokenServiceError> {
        let key = self.keys.ff1_key(tenant).await?;
        let ff1 = Ff1Tokenizer::with_key(key.expose_secret())?;
        let id = tenant.as_uuid();
        Ok(ff1.tokenize(pan, keep, &Ff1Tweak::for_tenant(id.as_bytes()))?)
    }

    /// An FF1 token value already stored: the same card tokenized before
    /// answers with its live token; anything else is a conflict.
    async fn ff1_existing(
        &self,
        caller: &Caller,
        wanted: &StoredToken,
        along: &Alongside<'_>,
    ) -> Result<(TokenView, bool), TokenServiceError> {
        use subtle::ConstantTimeEq;
        let existing = self.store.token(wanted.tenant, &wanted.token).await?;
        let same_card = bool::from(existing.fingerprint.ct_eq(&wanted.fingerprint));
        if existing.deleted_at.is_none() && existing.format == "ff1" && same_card {
            let view = view(&existing);
            let event = self.event(caller, "token.tokenize", Outcome::Success, &existing.token);
            return match self.commit(along, None, &view, event).await? {
                JoinedOutcome::Written => Ok((view, false)),
                _ => Err(TokenServiceError::IdempotencyKeyTaken),
            };
        }
        Err(TokenServiceError::Ff1Taken)
    }

    /// Metadata of a live token of the caller's tenant.
    pub async fn get(&self, caller: &Caller, token: &str) -> Result<TokenView, TokenServiceError> {
        let stored = self.live(caller.tenant, token).await?;
        Ok(view(&stored))
    }

    /// The card in clear. Audited before it is returned; any failure to
    /// audit or decrypt returns nothing.
    pub async fn detokenize(
        &self,
        caller: &Caller,
        token: &str,
    ) -> Result<Detokenized, TokenServiceError> {
        self.detokenize_with(caller, token, None).await
    }

    /// [`TokenService::detokenize`], committing `pending` (the request's
    /// authentication) with the detokenize event in one group commit.
    pub async fn detokenize_with(
        &self,
        caller: &Caller,
        token: &str,
        pending: Option<&PendingAudit>,
    ) -> Result<Detokenized, TokenServiceError> {
        let audit = |outcome| {
            let event = self.event(caller, "token.detokenize", outcome, token);
            self.record_with(pending, event)
        };
        let stored = match self.live(caller.tenant, token).await {
            Ok(s) => s,
            Err(e) => {
                audit(Outcome::Failure).await?;
                return Err(e);
            }
        };
        let sealed = stored.sealed.as_ref().ok_or(TokenServiceError::Deleted)?;
        let opened = match self
            .open_checked(caller.tenant, &stored.token, sealed)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                audit(Outcome::Failure).await?;
                return Err(e.into());
            }
        };
        let (number, holder_name) = decode_card(opened.expose_secret())?;
        let expiry = Expiry::new(u32::from(stored.exp_month), u32::from(stored.exp_year))?;
        audit(Outcome::Success).await?;
        Ok(Detokenized {
            number,
            holder_name,
            expiry,
        })
    }

    /// The card behind a token, for an acquirer call only: the connector
    /// records the decryption in the audit trail (`card.decrypt`) before
    /// the card leaves, so this does not audit it a second time.
    pub(crate) async fn open_for_charge(
        &self,
        tenant: TenantId,
        token: &str,
    ) -> Result<(Pan, Expiry), TokenServiceError> {
        let stored = self.live(tenant, token).await?;
        let sealed = stored.sealed.as_ref().ok_or(TokenServiceError::Deleted)?;
        let opened = self.open_checked(tenant, &stored.token, sealed).await?;
        let (number, _) = decode_card(opened.expose_secret())?;
        let pan = Pan::parse(number.expose_secret())?;
        let expiry = Expiry::new(u32::from(stored.exp_month), u32::from(stored.exp_year))?;
        Ok((pan, expiry))
    }

    /// Opens a sealed card only while the HSM answers (fail closed).
    async fn open_checked(
        &self,
        tenant: TenantId,
        token: &str,
        sealed: &SealedRecord,
    ) -> Result<SecretBytes, KeyError> {
        self.keys.ensure_available().await?;
        self.keys.open(&tenant.to_string(), token, sealed).await
    }

    /// Crypto-shreds the token: its sealed record is erased, a tombstone stays.
    pub async fn delete(&self, caller: &Caller, token: &str) -> Result<(), TokenServiceError> {
        // A refused delete is an invalid access attempt too (PCI DSS 10.2.1.4).
        let shredded = self.shred(caller.tenant, token).await;
        let outcome = match shredded {
            Ok(()) => Outcome::Success,
            Err(_) => Outcome::Failure,
        };
        self.audit(caller, "token.delete", outcome, token).await?;
        shredded
    }

    async fn shred(&self, tenant: TenantId, token: &str) -> Result<(), TokenServiceError> {
        self.live(tenant, token).await?;
        let now = self.env.clock.now();
        if !self.store.shred_token(tenant, token, now).await? {
            return Err(TokenServiceError::Deleted);
        }
        Ok(())
    }

    /// Shreds every token past its `expires_at`, in batches; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, TokenServiceError> {
        let now = self.env.clock.now();
        let mut total = 0;
        loop {
            let n = self.store.shred_expired_tokens(now, 500).await?;
            total += n;
            if n < 500 {
                break;
            }
        }
        if total > 0 {
            self.audit
                .record(
                    AuditEvent::system("token.expire", now, Outcome::Success)
                        .with_reason(format!("{total} tokens shredded")),
                )
                .await?;
        }
        Ok(total)
    }

    async fn live(&self, tenant: TenantId, token: &str) -> Result<StoredToken, TokenServiceError> {
        // A string that is not a token cannot name one; don't query for it.
        TokenValue::parse(token).map_err(|_| TokenServiceError::NotFound)?;
        let stored = self.store.token(tenant, token).await?;
        if stored.deleted_at.is_some() {
            return Err(TokenServiceError::Deleted);
        }
        Ok(stored)
    }

    async fn audit(
        &self,
        caller: &Caller,
        event_type: &str,
        outcome: Outcome,
        token: &str,
    ) -> Result<(), AuditError> {
        self.audit
            .record(self.event(caller, event_type, outcome, token))
            .await
    }

    /// Records `event` after the request's pending events, in one commit.
    async fn record_with(
        &self,
        pending: Option<&PendingAudit>,
        event: AuditEvent,
    ) -> Result<(), AuditError> {
        let mut events = pending.map(PendingAudit::peek).unwrap_or_default();
        let earlier = events.len();
        events.push(event);
        self.audit.record_all(events).await?;
        if let Some(pending) = pending {
            pending.committed(earlier);
        }
        Ok(())
    }

    fn event(
        &self,
        caller: &Caller,
        event_type: &str,
        outcome: Outcome,
        token: &str,
    ) -> AuditEvent {
        // A caller-supplied token string is only recorded if it is token-shaped
        // (never passes Luhn), so a PAN sent in its place is never written.
        let resource = TokenValue::parse(token)
            .map(|t| t.as_str().to_owned())
            .unwrap_or_else(|_| "(not a token)".to_owned());
        AuditEvent {
            event_type: event_type.to_owned(),
            at: self.env.clock.now(),
            actor_kind: caller.actor_kind,
            actor_id: caller.actor_id.clone(),
            tenant: Some(caller.tenant),
            outcome,
            origin: caller.origin.clone(),
            resource: Some(resource),
            request_id: caller.request_id.clone(),
            reason: None,
        }
    }
}

fn kept_digits(policy: TokenPolicy) -> KeptDigits {
    if policy.keep_bin {
        KeptDigits::BinAndLastFour
    } else {
        KeptDigits::LastFour
    }
}

fn view(t: &StoredToken) -> TokenView {
    use base64::Engine;
    TokenView {
        token: t.token.clone(),
        format: t.format.clone(),
        card: CardSummary {
            brand: t.brand.clone(),
            last4: t.last4.clone(),
            bin: t.bin.clone(),
            exp_month: t.exp_month,
            exp_year: t.exp_year,
        },
        fingerprint: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t.fingerprint),
        created_at: t.created_at,
        expires_at: t.expires_at,
        metadata: t.metadata.clone(),
    }
}

/// Record plaintext, format 1: `1 | len(number) | number | holder name`.
fn encode_card(pan: &Pan, holder_name: Option<&str>) -> Zeroizing<Vec<u8>> {
    let digits = pan.expose_digits().as_bytes();
    let holder = holder_name.unwrap_or("").as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(2 + digits.len() + holder.len()));
    out.push(1);
    // A PAN has at most 19 digits.
    out.push(digits.len() as u8);
    out.extend_from_slice(digits);
    out.extend_from_slice(holder);
    out
}

fn decode_card(
    plaintext: &[u8],
) -> Result<(SecretString, Option<SecretString>), TokenServiceError> {
    let corrupt = || TokenServiceError::Keys(KeyError::IntegrityFailure);
    let [1, len, rest @ ..] = plaintext else {
        return Err(corrupt());
    };
    let len = usize::from(*len);
    if rest.len() < len {
        return Err(corrupt());
    }
    let (digits, holder) = rest.split_at(len);
    let number = std::str::from_utf8(digits).map_err(|_| corrupt())?;
    let holder = std::str::from_utf8(holder).map_err(|_| corrupt())?;
    Ok((
        SecretString::new(number.to_owned()),
        (!holder.is_empty()).then(|| SecretString::new(holder.to_owned())),
    ))
}

/// Metadata is the caller's: small, flat, and never a place for card data.
fn check_metadata(metadata: Option<&serde_json::Value>) -> Result<(), TokenServiceError> {
    let Some(value) = metadata else {
        return Ok(());
    };
    let map = value
        .as_object()
        .ok_or(TokenServiceError::Metadata("must be an object"))?;
    if map.len() > 20 {
        return Err(TokenServiceError::Metadata("at most 20 keys"));
    }
    for (key, v) in map {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(_) | serde_json::Value::Null => continue,
            _ => return Err(TokenServiceError::Metadata("values must be scalars")),
        };
        if key.len() > 40 || text.len() > 500 {
            return Err(TokenServiceError::Metadata(
                "keys up to 40, values up to 500 characters",
            ));
        }
        if crate::redact::mask_pans(key) != key.as_str() || crate::redact::mask_pans(&text) != text
        {
            return Err(TokenServiceError::Metadata(
                "must not contain a card number",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_plaintext_round_trips() {
        let pan = Pan::parse("4111 1111 1111 1111").unwrap();
        let encoded = encode_card(&pan, Some("Ada Lovelace"));
        let (number, holder) = decode_card(&encoded).unwrap();
        assert_eq!(number.expose_secret(), "4111111111111111");
        assert_eq!(holder.unwrap().expose_secret(), "Ada Lovelace");
        let (_, holder) = decode_card(&encode_card(&pan, None)).unwrap();
        assert!(holder.is_none());
        assert!(decode_card(&[2, 1, b'4']).is_err());
        assert!(decode_card(&[1, 16, b'4']).is_err());
    }

    #[test]
    fn metadata_may_not_carry_card_numbers() {
        let ok = serde_json::json!({"evse": "DE*ION*E1234", "kwh": 42});
        assert!(check_metadata(Some(&ok)).is_ok());
        for bad in [
            serde_json::json!({"note": "card 4111 1111 1111 1111"}),
            serde_json::json!({"pan": 4111111111111111u64}),
            serde_json::json!(["not", "an", "object"]),
            serde_json::json!({"nested": {"a": 1}}),
        ] {
            assert!(check_metadata(Some(&bad)).is_err(), "{bad}");
        }
    }
}
