//! Routes about the API itself and the caller's connection.

use axum::Extension;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::http::server::ConnectionInfo;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness on the public port, for load balancers that only see it.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// The OpenAPI 3.1 description of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    axum::Json(crate::http::openapi::ApiDoc::openapi()).into_response()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// TLS protocol of this connection.
    pub tls_version: String,
    /// The verified client certificate, when one was presented.
    pub client_certificate: Option<CertificateSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: String,
    pub not_after: String,
}

/// What the server sees of this connection: chargers use it to check that
/// their certificate is accepted.
#[utoipa::path(get, path = "/v1/whoami", tag = "meta",
    responses((status = 200, body = WhoAmI)))]
pub async fn whoami(connection: Option<Extension<ConnectionInfo>>) -> axum::Json<WhoAmI> {
    let (tls_version, client_certificate) = match connection {
        Some(Extension(info)) => (
            info.tls_version.to_owned(),
            info.client_certificate
                .as_deref()
                .map(|c| CertificateSummary {
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone(),
                    sha256: c.sha256_hex.clone(),
                    not_after: c.not_after.clone(),
                }),
        ),
        None => ("none".to_owned(), None),
    };
    axum::Json(WhoAmI {
        tls_version,
        client_certificate,
    })
}
