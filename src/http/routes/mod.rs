//! Every public route is declared here, once, with the access it needs. The
//! same table builds the router and is checked against the OpenAPI document
//! (and, as authorization lands, against the policy).

pub mod audit;
pub mod meta;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication: only the API description and connection check.
    Public,
    /// Staff with the auditor role: read, export and verify the audit trail.
    /// Enforced by the authentication layer (not yet in place).
    Auditor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// A router under construction that remembers what it was given.
pub struct ApiRoutes {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl ApiRoutes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            specs: Vec::new(),
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let method_router: MethodRouter<AppState> = match MethodFilter::try_from(method.clone()) {
            Ok(filter) => on(filter, handler),
            Err(_) => return self,
        };
        self.router = self.router.route(path, method_router);
        self.specs.push(RouteSpec {
            method,
            path,
            access,
        });
        self
    }

    pub fn specs(&self) -> &[RouteSpec] {
        &self.specs
    }

    pub fn into_router(self, state: AppState) -> Router {
        self.router.with_state(state)
    }
}

/// The public API.
pub fn api_routes() -> ApiRoutes {
    ApiRoutes::new()
        .add(Method::GET, "/healthz", Access::Public, meta::healthz)
        .add(
            Method::GET,
            "/openapi.json",
            Access::Public,
            meta::openapi_json,
        )
        .add(Method::GET, "/v1/whoami", Access::Public, meta::whoami)
        .add(
            Method::GET,
            "/v1/audit/events",
            Access::Auditor,
            audit::search,
        )
        .add(
            Method::GET,
            "/v1/audit/verify",
            Access::Auditor,
            audit::verify,
        )
        .add(
            Method::GET,
            "/v1/audit/export",
            Access::Auditor,
            audit::export,
        )
}
