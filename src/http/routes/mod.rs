//! Every public route is declared here, once, with the access it needs. The
//! same table builds the router, is checked against the OpenAPI document and
//! is walked by a test that fails if any route lacks a permission.
//!
//! Access is enforced in one place: [`crate::http::auth::guard`], a route
//! layer the table puts on every route. Handlers of permissioned routes take a
//! [`crate::auth::Principal`] argument: they only ever see a caller the
//! policy allowed.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod invoices;
pub mod meta;
pub mod payments;
pub mod tariffs;
pub mod tokens;
pub mod wallets;
pub mod webhooks;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::AppState;
use crate::auth::Permission;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication: the API description, the connection check and the
    /// sign-in steps themselves. Still subject to the per-address budget.
    Public,
    /// An authenticated principal whose role holds this permission.
    Permission(Permission),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// When a route's authentication event is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEvent {
    /// By the guard, before the handler runs.
    Recorded,
    /// With the handler's own audit events, in one group commit (ADR 0008):
    /// the guard leaves it in the request's [`crate::audit::PendingAudit`]
    /// and records whatever the handler left there before the answer leaves.
    WithRequest,
}

/// A router under construction that remembers what it was given.
pub struct ApiRoutes {
    routes: Vec<(RouteSpec, AuthEvent, MethodRouter<AppState>)>,
}

impl ApiRoutes {
    fn new() -> Self {
        Self { routes: Vec::new() }
    }

    fn add<H, T>(self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add_as(method, path, access, AuthEvent::Recorded, handler)
    }

    /// A route whose handler commits the authentication event with its own.
    fn add_joined<H, T>(
        self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add_as(method, path, access, AuthEvent::WithRequest, handler)
    }

    fn add_as<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        auth_event: AuthEvent,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let method_router: MethodRouter<AppState> = match MethodFilter::try_from(method.clone()) {
            Ok(filter) => on(filter, handler),
            Err(_) => return self,
        };
        self.routes.push((
            RouteSpec {
                method,
                path,
                access,
            },
            auth_event,
            method_router,
        ));
        self
    }

    pub fn specs(&self) -> Vec<RouteSpec> {
        self.routes
            .iter()
            .map(|(spec, _, _)| spec.clone())
            .collect()
    }

    /// The router, every route behind the guard for its access.
    pub fn into_router(self, state: AppState) -> Router {
        let mut router: Router<AppState> = Router::new();
        for (spec, auth_event, method_router) in self.routes {
            let guarded = method_router.route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), spec.access, auth_event),
                super::auth::guard,
            ));
            router = router.route(spec.path, guarded);
        }
        router.with_state(state)
    }
}

fn perm(p: Permission) -> Access {
    Access::Permission(p)
}

/// The public API.
pub fn api_routes() -> ApiRoutes {
    use Permission as P;
    ApiRoutes::new()
        .add(Method::GET, "/healthz", Access::Public, meta::healthz)
        .add(
            Method::GET,
            "/openapi.json",
            Access::Public,
            meta::openapi_json,
        )
        .add(Method::GET, "/v1/whoami", Access::Public, meta::whoami)
        // cards and tokens
        .add_joined(
            Method::POST,
            "/v1/tokens",
            perm(P::TokensCreate),
            tokens::tokenize,
        )
        .add(
            Method::POST,
            "/v1/tokens/batch",
            perm(P::TokensBatch),
            tokens::batch,
        )
        .add(
            Method::GET,
            "/v1/tokens/{token}",
            perm(P::TokensRead),
            tokens::get_token,
        )
        .add(
            Method::DELETE,
            "/v1/tokens/{token}",
            perm(P::TokensDelete),
            tokens::delete_token,
        )
        .add_joined(
            Method::POST,
            "/v1/tokens/{token}/detokenize",
            perm(P::TokensDetokenize),
            tokens::detokenize,
        )
        // tariffs
        .add(
            Method::GET,
            "/v1/tariffs",
            perm(P::BillingRead),
            tariffs::list,
        )
        .add(
            Method::GET,
            "/v1/tariffs/{id}",
            perm(P::BillingRead),
            tariffs::get,
        )
        .add(
            Method::PUT,
            "/v1/tariffs/{id}",
            perm(P::BillingManage),
            tariffs::publish,
        )
        .add(
            Method::GET,
            "/v1/tariffs/{id}/display",
            perm(P::PaymentsRead),
            tariffs::display,
        )
        // EV payment sessions
        .add(
            Method::POST,
            "/v1/payment-sessions",
            perm(P::PaymentsCreate),
            payments::create,
        )
        .add(
            Method::GET,
            "/v1/payment-sessions/{id}",
            perm(P::PaymentsRead),
            payments::get,
        )
        .add(
            Method::GET,
            "/v1/payment-sessions/{id}/events",
            perm(P::PaymentsRead),
            payments::events,
        )
        .add(
            Method::POST,
            "/v1/payment-sessions/{id}/meter",
            perm(P::PaymentsMeter),
            payments::meter,
        )
        .add(
            Method::POST,
            "/v1/payment-sessions/{id}/complete",
            perm(P::PaymentsComplete),
            payments::complete,
        )
        .add(
            Method::POST,
            "/v1/payment-sessions/{id}/cancel",
            perm(P::PaymentsCancel),
            payments::cancel,
        )
        .add(
            Method::POST,
            "/v1/payment-sessions/{id}/refunds",
            perm(P::PaymentsRefund),
            payments::refund,
        )
        // webhooks: endpoints and their delivery log
        .add(
            Method::POST,
            "/v1/webhooks",
            perm(P::WebhooksManage),
            webhooks::create,
        )
        .add(
            Method::GET,
            "/v1/webhooks",
            perm(P::WebhooksManage),
            webhooks::list,
        )
        .add(
            Method::DELETE,
            "/v1/webhooks/{id}",
            perm(P::WebhooksManage),
            webhooks::delete,
        )
        .add(
            Method::GET,
            "/v1/webhooks/{id}/deliveries",
            perm(P::WebhooksManage),
            webhooks::deliveries,
        )
        .add(
            Method::GET,
            "/v1/payment-sessions",
            perm(P::PaymentsRead),
            billing::history,
        )
        // accounts: drivers and fleets, their tokens and RFID cards
        .add(
            Method::POST,
            "/v1/accounts",
            perm(P::AccountsManage),
            accounts::create,
        )
        .add(
            Method::GET,
            "/v1/accounts",
            perm(P::AccountsManage),
            accounts::list,
        )
        .add(
            Method::GET,
            "/v1/accounts/{id}",
            perm(P::AccountsManage),
            accounts::get,
        )
        .add(
            Method::POST,
            "/v1/accounts/{id}/payment-methods",
            perm(P::AccountsManage),
            accounts::add_payment_method,
        )
        .add(
            Method::GET,
            "/v1/accounts/{id}/payment-methods",
            perm(P::AccountsManage),
            accounts::payment_methods,
        )
        .add(
            Method::DELETE,
            "/v1/accounts/{id}/payment-methods/{token}",
            perm(P::AccountsManage),
            accounts::remove_payment_method,
        )
        .add(
            Method::POST,
            "/v1/accounts/{id}/rfid-cards",
            perm(P::AccountsManage),
            accounts::register_rfid,
        )
        .add(
            Method::GET,
            "/v1/accounts/{id}/rfid-cards",
            perm(P::AccountsManage),
            accounts::rfid_cards,
        )
        .add(
            Method::DELETE,
            "/v1/accounts/{id}/rfid-cards/{uid}",
            perm(P::AccountsManage),
            accounts::block_rfid,
        )
        .add(
            Method::GET,
            "/v1/accounts/{id}/sessions",
            perm(P::AccountsManage),
            accounts::sessions,
        )
        // invoices: monthly, per account
        .add(
            Method::POST,
            "/v1/invoices",
            perm(P::BillingManage),
            invoices::issue,
        )
        .add(
            Method::GET,
            "/v1/invoices",
            perm(P::BillingRead),
            invoices::list,
        )
        .add(
            Method::GET,
            "/v1/invoices/{id}",
            perm(P::BillingRead),
            invoices::get,
        )
        .add(
            Method::PUT,
            "/v1/accounts/{id}/wallet",
            perm(P::AccountsManage),
            wallets::put,
        )
        .add(
            Method::GET,
            "/v1/accounts/{id}/wallet",
            perm(P::AccountsManage),
            wallets::get,
        )
        .add(
            Method::POST,
            "/v1/accounts/{id}/wallet/top-ups",
            perm(P::AccountsManage),
            wallets::top_up,
        )
        // billing: receipts and accounting exports
        .add(
            Method::GET,
            "/v1/receipts/{id}",
            perm(P::BillingRead),
            billing::receipt,
        )
        .add(
            Method::GET,
            "/v1/exports/sessions.csv",
            perm(P::BillingRead),
            billing::sessions_csv,
        )
        .add(
            Method::GET,
            "/v1/exports/payments.csv",
            perm(P::BillingRead),
            billing::payments_csv,
        )
        .add(
            Method::GET,
            "/v1/exports/cdrs",
            perm(P::BillingRead),
            billing::cdrs,
        )
        .add(
            Method::GET,
            "/v1/exports/revenue",
            perm(P::BillingRead),
            billing::revenue,
        )
        // staff sign-in
        .add(Method::POST, "/v1/auth/login", Access::Public, auth::login)
        .add(Method::POST, "/v1/auth/mfa", Access::Public, auth::mfa)
        .add(
            Method::POST,
            "/v1/auth/logout",
            perm(P::SessionEnd),
            auth::logout,
        )
        .add(
            Method::POST,
            "/v1/auth/step-up",
            perm(P::SessionStepUp),
            auth::step_up,
        )
        // administration
        .add(
            Method::GET,
            "/v1/tenants",
            perm(P::TenantsManage),
            admin::list_tenants,
        )
        .add(
            Method::POST,
            "/v1/tenants",
            perm(P::TenantsManage),
            admin::create_tenant,
        )
        .add(
            Method::GET,
            "/v1/clients",
            perm(P::ClientsManage),
            admin::list_clients,
        )
        .add(
            Method::POST,
            "/v1/clients",
            perm(P::ClientsManage),
            admin::create_client,
        )
        .add(
            Method::POST,
            "/v1/clients/{id}/revoke",
            perm(P::ClientsManage),
            admin::revoke_client,
        )
        .add(
            Method::POST,
            "/v1/clients/{id}/rotate",
            perm(P::ClientsManage),
            admin::rotate_client,
        )
        .add(
            Method::GET,
            "/v1/charger-cas",
            perm(P::ChargerCasManage),
            admin::list_charger_cas,
        )
        .add(
            Method::POST,
            "/v1/charger-cas",
            perm(P::ChargerCasManage),
            admin::register_charger_ca,
        )
        .add(
            Method::POST,
            "/v1/charger-cas/{id}/revocations",
            perm(P::ChargerCasManage),
            admin::revoke_charger_certificate,
        )
        .add(
            Method::POST,
            "/v1/charger-cas/{id}/crl",
            perm(P::ChargerCasManage),
            admin::import_charger_crl,
        )
        .add(
            Method::GET,
            "/v1/users",
            perm(P::UsersManage),
            admin::list_users,
        )
        .add(
            Method::POST,
            "/v1/users",
            perm(P::UsersManage),
            admin::create_user,
        )
        .add(
            Method::POST,
            "/v1/users/{id}/disable",
            perm(P::UsersManage),
            admin::disable_user,
        )
        .add(
            Method::POST,
            "/v1/users/{id}/reset",
            perm(P::UsersManage),
            admin::reset_user,
        )
        .add(
            Method::GET,
            "/v1/principals",
            perm(P::PrincipalsRead),
            admin::principals,
        )
        // audit trail (auditors)
        .add(
            Method::GET,
            "/v1/audit/events",
            perm(P::AuditRead),
            audit::search,
        )
        .add(
            Method::GET,
            "/v1/audit/verify",
            perm(P::AuditRead),
            audit::verify,
        )
        .add(
            Method::GET,
            "/v1/audit/export",
            perm(P::AuditRead),
            audit::export,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route names a permission, or is one of the few that must be public.
    #[test]
    fn every_route_declares_its_access() {
        const PUBLIC: &[&str] = &[
            "/healthz",
            "/openapi.json",
            "/v1/whoami",
            "/v1/auth/login",
            "/v1/auth/mfa",
        ];
        let specs = api_routes().specs();
        assert!(!specs.is_empty());
        for spec in &specs {
            match spec.access {
                Access::Public => assert!(
                    PUBLIC.contains(&spec.path),
                    "{} {} is public but not on the list of public routes",
                    spec.method,
                    spec.path
                ),
                Access::Permission(p) => assert!(Permission::ALL.contains(&p)),
            }
        }
    }
}
