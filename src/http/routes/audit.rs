//! Auditors' routes: search, export and verify the audit trail. The work is
//! in `crate::audit`; these turn query strings into its types and its
//! answers into HTTP. Who may call them is the route table's `Access::Auditor`.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::{
    AuditLogError, AuditQuery, Cursor, ExportFormat, Outcome, Reader, SearchPage, VerifyReport,
};
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::middleware::RequestId;
use crate::http::server::ConnectionInfo;

/// Filters shared by search and export.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Inclusive lower bound, RFC 3339.
    pub from: Option<String>,
    /// Exclusive upper bound, RFC 3339.
    pub to: Option<String>,
    /// Actor id, exactly.
    pub actor: Option<String>,
    /// Event type, exactly (e.g. `token.detokenize`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Affected resource, exactly (e.g. a token id).
    pub resource: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// Export only: `jsonl` (default) or `csv`.
    pub format: Option<String>,
}

impl SearchParams {
    fn query(&self) -> Result<AuditQuery, ApiError> {
        let mut query = AuditQuery::new();
        query.from = self.from.as_deref().map(|t| time("from", t)).transpose()?;
        query.to = self.to.as_deref().map(|t| time("to", t)).transpose()?;
        query.actor_id = self.actor.clone();
        query.event_type = self.event_type.clone();
        query.resource = self.resource.clone();
        query.outcome = self
            .outcome
            .as_deref()
            .map(|o| {
                Outcome::parse(o).ok_or_else(|| {
                    ApiError::bad_request("invalid_outcome", "outcome: success, failure or denied")
                })
            })
            .transpose()?;
        query.after = self
            .cursor
            .as_deref()
            .map(|c| {
                Cursor::decode(c).map_err(|_| {
                    ApiError::bad_request("invalid_cursor", "cursor: use next_cursor as given")
                })
            })
            .transpose()?;
        if let Some(limit) = self.limit {
            if limit == 0 || limit > crate::audit::query::MAX_PAGE {
                return Err(ApiError::bad_request("invalid_limit", "limit: 1 to 1000"));
            }
            query.limit = limit;
        }
        Ok(query)
    }
}

fn time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request("invalid_time", format!("{name}: an RFC 3339 time")))
}

/// Who is asking: the authenticated auditor, and the connection it came on.
fn reader(
    principal: &Principal,
    connection: Option<&ConnectionInfo>,
    request_id: Option<&RequestId>,
) -> Reader {
    let origin = connection.map(|c| match &c.client_certificate {
        Some(cert) => format!("{} cert:{}", c.remote_addr, cert.sha256_hex),
        None => c.remote_addr.to_string(),
    });
    Reader {
        actor_kind: principal.kind.actor_kind(),
        actor_id: principal.id.clone(),
        tenant: Some(principal.tenant),
        origin,
        request_id: request_id.map(|r| r.0.to_string()),
    }
}

impl From<AuditLogError> for ApiError {
    fn from(error: AuditLogError) -> Self {
        match error {
            AuditLogError::Audit(_) => ApiError::unavailable("audit_unavailable"),
            AuditLogError::Store(e) => e.into(),
            AuditLogError::Sealer => ApiError::unavailable("audit_key_unavailable"),
            AuditLogError::Encode | AuditLogError::Io(_) => ApiError::internal(),
            AuditLogError::Broken(_) => ApiError::new(StatusCode::CONFLICT, "audit_chain_broken"),
        }
    }
}

/// Search the audit trail, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(SearchParams),
    responses((status = 200, body = SearchPage),
              (status = 400, body = crate::http::error::Problem),
              (status = 503, body = crate::http::error::Problem)))]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    connection: Option<Extension<ConnectionInfo>>,
    request_id: Option<Extension<RequestId>>,
    Query(params): Query<SearchParams>,
) -> Result<axum::Json<SearchPage>, ApiError> {
    let query = params.query()?;
    let who = reader(&principal, connection.as_deref(), request_id.as_deref());
    Ok(axum::Json(state.audit_log.search(&who, &query).await?))
}

/// Verify every node's hash chain against its sealed checkpoints; names the
/// first bad record of each chain.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyReport),
              (status = 503, body = crate::http::error::Problem)))]
pub async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    connection: Option<Extension<ConnectionInfo>>,
    request_id: Option<Extension<RequestId>>,
) -> Result<axum::Json<VerifyReport>, ApiError> {
    let who = reader(&principal, connection.as_deref(), request_id.as_deref());
    Ok(axum::Json(state.audit_log.verify(&who).await?))
}

/// Export matching records as JSON Lines or CSV, streamed.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(SearchParams),
    responses((status = 200, description = "JSON Lines or CSV, one record per line",
               content((String = "application/jsonl"), (String = "text/csv"))),
              (status = 400, body = crate::http::error::Problem),
              (status = 503, body = crate::http::error::Problem)))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    connection: Option<Extension<ConnectionInfo>>,
    request_id: Option<Extension<RequestId>>,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let format = match params.format.as_deref() {
        None => ExportFormat::Jsonl,
        Some(f) => ExportFormat::parse(f)
            .ok_or_else(|| ApiError::bad_request("invalid_format", "format: jsonl or csv"))?,
    };
    let mut query = params.query()?;
    query.after = None;
    let who = reader(&principal, connection.as_deref(), request_id.as_deref());
    let export = state.audit_log.export(&who, query, format).await?;
    let chunks = futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(export))),
            Ok(None) => None,
            Err(error) => {
                // The status is sent; cutting the body short tells the client.
                tracing::error!(%error, "audit export failed part way");
                Some((Err(error), None))
            }
        }
    });
    let file = match format {
        ExportFormat::Jsonl => "attachment; filename=\"audit.jsonl\"",
        ExportFormat::Csv => "attachment; filename=\"audit.csv\"",
    };
    let mut response = (StatusCode::OK, Body::from_stream(chunks)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(file));
    Ok(response)
}
