//! The outermost layer: a request id for every request, one access log line,
//! metrics by route template, and a guarantee that every error response
//! leaves as problem+json.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::{ApiError, PROBLEM_JSON, ProblemMarker, code_for_status};
use super::metrics::Metrics;

/// The id of the request being served, in extensions and in the task-local
/// scope so that problem documents can carry it.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

tokio::task_local! {
    static CURRENT_REQUEST_ID: Arc<str>;
}

/// The id of the request this task is serving, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    CURRENT_REQUEST_ID.try_with(Arc::clone).ok()
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);

    let mut response = CURRENT_REQUEST_ID
        .scope(
            id.clone(),
            async move { ensure_problem(next.run(req).await) }.instrument(span.clone()),
        )
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics.observe(method.as_str(), &route, status, elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            path = %path,
            status,
            latency_ms = elapsed.as_millis() as u64,
            "served"
        );
    });
    response
}

/// Error responses written by a layer or the framework carry no problem
/// document; give them one.
fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response.extensions().get::<ProblemMarker>().is_some()
        || response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if is_problem {
        return response;
    }
    let headers = response.headers().clone();
    let mut rebuilt = ApiError::new(status, code_for_status(status)).into_response();
    // Keep headers such as Retry-After or Allow that tell the client what to do.
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = headers.get(&name) {
            rebuilt.headers_mut().insert(name, value.clone());
        }
    }
    rebuilt
}

pub fn panic_response() -> Response {
    tracing::error!("handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error").into_response()
}
