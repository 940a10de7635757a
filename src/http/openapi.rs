//! The OpenAPI document, generated from handler annotations. A test checks
//! that every route in [`super::routes::api_routes`] is described here.

use utoipa::OpenApi;

use super::error::Problem;
use super::routes::{audit, meta};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voltvault",
        description = "Payment tokenization and card-data vault for EV charging networks. \
            Every failure is application/problem+json with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    paths(
        meta::healthz,
        meta::openapi_json,
        meta::whoami,
        audit::search,
        audit::verify,
        audit::export
    ),
    components(schemas(
        Problem,
        meta::Health,
        meta::WhoAmI,
        meta::CertificateSummary,
        crate::audit::SearchPage,
        crate::audit::ExportedRecord,
        crate::audit::VerifyReport,
        crate::audit::NodeReport,
        crate::audit::Problem,
        crate::audit::ProblemKind,
        crate::audit::ActorKind,
        crate::audit::Outcome
    ))
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::routes::api_routes;

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let routes = api_routes();
        assert!(!routes.specs().is_empty());
        for spec in routes.specs() {
            let method = spec.method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][spec.path][&method].is_object(),
                "{} {} is served but missing from /openapi.json",
                spec.method,
                spec.path
            );
        }
    }
}
