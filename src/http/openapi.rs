//! The OpenAPI document, generated from handler annotations. A test checks
//! that every route in [`super::routes::api_routes`] is described here.

use utoipa::OpenApi;

use super::error::Problem;
use super::routes::{
    accounts, admin, audit, auth, billing, invoices, meta, payments, tariffs, tokens, wallets,
    webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voltvault",
        description = "Payment tokenization and card-data vault for EV charging networks. \
            Every failure is application/problem+json with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    paths(
        meta::healthz, meta::openapi_json, meta::whoami,
        tokens::tokenize, tokens::batch, tokens::get_token, tokens::delete_token, tokens::detokenize,
        payments::create, payments::get, payments::events, payments::meter, payments::complete, payments::cancel,
        payments::refund,
        tariffs::list, tariffs::get, tariffs::publish, tariffs::display,
        billing::history, billing::receipt, billing::sessions_csv, billing::payments_csv, billing::cdrs, billing::revenue,
        auth::login, auth::mfa, auth::logout, auth::step_up,
        admin::list_tenants, admin::create_tenant,
        admin::list_clients, admin::create_client, admin::revoke_client, admin::rotate_client,
        admin::list_charger_cas, admin::register_charger_ca, admin::revoke_charger_certificate, admin::import_charger_crl,
        admin::list_users, admin::create_user, admin::disable_user, admin::reset_user,
        admin::principals,
        audit::search, audit::verify, audit::export,
        webhooks::create, webhooks::list, webhooks::delete, webhooks::deliveries,
        accounts::create, accounts::list, accounts::get, accounts::add_payment_method,
        accounts::payment_methods, accounts::remove_payment_method, accounts::register_rfid,
        accounts::rfid_cards, accounts::block_rfid, accounts::sessions,
        invoices::issue, invoices::list, invoices::get,
        wallets::put, wallets::get, wallets::top_up
    ),
    components(schemas(
        Problem, meta::Health, meta::WhoAmI, meta::CertificateSummary,
        tokens::CardInput, tokens::TokenizeBody, tokens::TokenizeResponse, tokens::BatchBody,
        tokens::BatchResponse, tokens::BatchItemResult, tokens::ItemError,
        tokens::DetokenizeResponse, tokens::DetokenizedCard,
        crate::tokens::service::TokenView, crate::tokens::service::CardSummary,
        payments::CreateSessionBody, payments::PaymentMethodBody, payments::MeterBody,
        payments::CompleteBody, payments::CancelBody, payments::RefundBody,
        crate::payments::service::SessionView, crate::payments::session::SessionStatus,
        crate::payments::session::MeterAction, crate::money::Money,
        tariffs::TariffList, tariffs::PriceDisplay, tariffs::VersionQuery,
        crate::payments::tariffs::TariffView,
        crate::billing::service::HistoryPage, crate::billing::receipt::Receipt,
        crate::billing::receipt::ReceiptLine, crate::billing::receipt::LineKind,
        crate::billing::receipt::VatSummary, crate::billing::receipt::ReceiptRefund,
        crate::billing::receipt::CardSummary, crate::billing::receipt::OperatorDetails,
        crate::billing::receipt::TariffRef, crate::billing::exports::Revenue,
        crate::billing::exports::RevenueRow,
        crate::audit::SearchPage, crate::audit::ExportedRecord, crate::audit::VerifyReport,
        crate::audit::NodeReport, crate::audit::Problem, crate::audit::ProblemKind,
        crate::audit::ActorKind, crate::audit::Outcome,
        webhooks::WebhookCreate, webhooks::WebhookCreated,
        crate::notify::webhooks::WebhookView, crate::notify::webhooks::DeliveryView,
        crate::notify::EventType, crate::notify::DeliveryState,
        accounts::AccountCreate, accounts::PaymentMethodAdd, accounts::RfidRegister,
        crate::accounts::AccountKind, crate::accounts::RfidStatus,
        crate::accounts::service::AccountView, crate::accounts::service::AccountPage,
        crate::accounts::service::MethodView, crate::accounts::service::RfidView,
        invoices::InvoiceCreate, crate::billing::invoices::InvoiceView,
        crate::billing::invoices::InvoicePage, crate::billing::invoice::InvoiceDocument,
        crate::billing::invoice::InvoiceLine, crate::billing::invoice::BillTo,
        wallets::WalletPut, wallets::TopUpCreate, wallets::AmountIn,
        crate::wallets::service::WalletView, crate::wallets::service::EntryView,
        crate::wallets::service::TopUpView, crate::wallets::EntryKind
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the bearer scheme (API keys and staff session tokens).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "charger_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "A client certificate issued by a charger CA registered for the tenant".into(),
                ),
                extensions: None,
            },
        );
        // Each route's permission, from the same table that builds the router.
        for spec in super::routes::api_routes().specs() {
            let super::routes::Access::Permission(permission) = spec.access else {
                continue;
            };
            let Some(item) = openapi.paths.paths.get_mut(spec.path) else {
                continue;
            };
            let operation = match spec.method.as_str() {
                "GET" => item.get.as_mut(),
                "POST" => item.post.as_mut(),
                "PUT" => item.put.as_mut(),
                "DELETE" => item.delete.as_mut(),
                _ => None,
            };
            if let Some(operation) = operation {
                operation.security = Some(vec![
                    utoipa::openapi::security::SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    ),
                    utoipa::openapi::security::SecurityRequirement::new(
                        "charger_certificate",
                        Vec::<String>::new(),
                    ),
                ]);
                let extensions = utoipa::openapi::extensions::ExtensionsBuilder::new()
                    .add("x-permission", permission.as_str())
                    .build();
                operation
                    .extensions
                    .get_or_insert_with(Default::default)
                    .merge(extensions);
            }
        }
    }
}

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
        // Every permissioned route says which permission it needs.
        for spec in routes.specs() {
            if let crate::http::routes::Access::Permission(p) = spec.access {
                let method = spec.method.as_str().to_ascii_lowercase();
                assert_eq!(doc["paths"][spec.path][&method]["x-permission"], p.as_str());
            }
        }
        // And nothing is documented that is not served.
        let specs = routes.specs();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                assert!(
                    specs
                        .iter()
                        .any(|s| s.path == path && s.method.as_str().eq_ignore_ascii_case(method)),
                    "{method} {path} is documented but not served"
                );
            }
        }
    }
}
