//! The HTTP API as an OpenAPI 3.1 document, generated from code: the route
//! table below (a test sends each entry to the router and fails if it is not
//! served) and the schemas derived from the very structs the handlers parse
//! and answer with. `docs/openapi.json` is this document; a test fails when
//! it is stale (`KEYWARD_UPDATE_OPENAPI=1 cargo test -p keyward-server
//! openapi` rewrites it). Prose, error codes and examples: `docs/http-api.md`.

use super::error::{ErrorBody, ErrorDetail};
use super::routes::accounts::KeygenRequest;
use super::routes::keys::{ReportCompromised, RollKey};
use super::routes::migrate_seal::{CurrentSeal, MigrateSealRequest};
use super::routes::rekey::{RekeyStart, RekeyUpdate};
use super::routes::roll::RollDue;
use super::routes::scan::{FoundExchangeKey, MatchRequest};
use super::routes::sign::SignRequest;
use super::routes::sys::{RewrapRequest, UnsealRequest};
use super::routes::tokens::TokenRequest;
use crate::exchange::Signed;
use crate::keys::{CreateKey, CreateNamespace, RateInfo, VerifyAnswer, VerifyRequest};
use crate::secrets::{PutRequest, RotateRequest, StepRequest, VersionsRequest};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr,
    Required, ResponseBuilder, Schema, Type,
};

mod routes;

pub(crate) use routes::{ROUTES, Route, is_sensitive};

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// The OpenAPI document.
pub(crate) fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for r in ROUTES {
        let op = operation(r);
        let methods: &[HttpMethod] = match r.method {
            "GET" => &[HttpMethod::Get],
            "POST" => &[HttpMethod::Post],
            "PUT" => &[HttpMethod::Put],
            "DELETE" => &[HttpMethod::Delete],
            _ => &[HttpMethod::Get, HttpMethod::Post, HttpMethod::Put, HttpMethod::Delete],
        };
        for m in methods {
            paths = paths.path(r.path, PathItem::new(m.clone(), op.clone()));
        }
    }
    let components = components();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("keyward")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "A credential firewall for automated trading. Generated from code; prose in docs/http-api.md.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// One route's operation: parameters, body, answers, security.
fn operation(r: &Route) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(r.summary))
        .description(Some(format!("Needs: `{}`.", r.scope)))
        .tag(r.tag)
        .operation_id(Some(format!("{}_{}", r.method.to_ascii_lowercase(), operation_name(r.path))));
    for segment in r.path.split('/').filter(|s| s.starts_with('{')) {
        let name = segment.trim_matches(|c| c == '{' || c == '}');
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    for (name, what) in r.query {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*what))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if let Some(body) = r.body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(schema_ref(body)))
                .required(Some(Required::True))
                .build(),
        ));
    }
    let (status, schema, what) = r.ok;
    let ok = schema.map(schema_ref).unwrap_or_else(|| ObjectBuilder::new().schema_type(Type::Object).into());
    op = op
        .response(
            status.to_string(),
            ResponseBuilder::new().description(what).content("application/json", json_content(ok)),
        )
        .response(
            "default",
            ResponseBuilder::new()
                .description("refused: a stable code and a message (see docs/http-api.md)")
                .content("application/json", json_content(schema_ref("ErrorBody"))),
        );
    if r.scope != "none" {
        op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    op.build()
}

/// The security scheme and every schema the routes name.
fn components() -> utoipa::openapi::Components {
    ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("a keyward access key (kw_…) or a short-lived token (kwt_…)"))
                    .build(),
            ),
        )
        .schema_from::<ErrorBody>()
        .schema_from::<ErrorDetail>()
        .schema_from::<UnsealRequest>()
        .schema_from::<RewrapRequest>()
        .schema_from::<RekeyStart>()
        .schema_from::<MigrateSealRequest>()
        .schema_from::<CurrentSeal>()
        .schema_from::<MatchRequest>()
        .schema_from::<FoundExchangeKey>()
        .schema_from::<RekeyUpdate>()
        .schema_from::<PutRequest>()
        .schema_from::<VersionsRequest>()
        .schema_from::<RotateRequest>()
        .schema_from::<StepRequest>()
        .schema_from::<crate::exchange::CheckOutcome>()
        .schema_from::<crate::exchange::Drain>()
        .schema_from::<CreateKey>()
        .schema_from::<RollKey>()
        .schema_from::<RollDue>()
        .schema_from::<VerifyRequest>()
        .schema_from::<VerifyAnswer>()
        .schema_from::<RateInfo>()
        .schema_from::<CreateNamespace>()
        .schema_from::<TokenRequest>()
        .schema_from::<SignRequest>()
        .schema_from::<KeygenRequest>()
        .schema_from::<Signed>()
        .schema_from::<crate::rotation::RotationStatus>()
        .schema_from::<ReportCompromised>()
        .schema_from::<crate::audit::forensic::CompromisedAnswer>()
        .schema_from::<crate::audit::forensic::Report>()
        .schema_from::<crate::audit::forensic::Action>()
        .schema_from::<crate::audit::forensic::Address>()
        .schema_from::<crate::audit::forensic::PlacedOrder>()
        .schema_from::<crate::rotation::DueItem>()
        .schema_from::<super::routes::incident::FreezeRequest>()
        .schema_from::<crate::incident::FreezeSummary>()
        .schema_from::<crate::incident::UnfreezeSummary>()
        .schema_from::<crate::incident::KeyNote>()
        .schema_from::<crate::incident::CheckReport>()
        .schema_from::<crate::incident::KeySettingsSeen>()
        .schema_from::<crate::exchange::CallResult>()
        .schema_from::<super::routes::controls::AddressRequest>()
        .schema_from::<super::routes::controls::CapRequest>()
        .schema_from::<super::routes::controls::DeadManRequest>()
        .schema_from::<super::routes::approvals::RejectRequest>()
        .schema_from::<crate::approvals::Approval>()
        .schema_from::<crate::approvals::PendingChange>()
        .schema_from::<crate::approvals::ApprovalState>()
        .schema_from::<crate::approvals::Vote>()
        .schema_from::<crate::controls::AllowedAddress>()
        .build()
}

/// `/v1/keys/{id}/roll` → `keys_id_roll`.
fn operation_name(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty() && *s != "v1")
        .map(|s| s.trim_matches(|c| c == '{' || c == '}'))
        .collect::<Vec<_>>()
        .join("_")
}

/// The document as pretty JSON with a trailing newline (what `docs/openapi.json` holds).
pub(crate) fn json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitivity_follows_the_route_table() {
        // Twice: worked out, then from what was worked out.
        for _ in 0..2 {
            sensitivity_of_routes();
        }
    }

    fn sensitivity_of_routes() {
        use axum::http::Method;
        assert!(is_sensitive(&Method::POST, "/v1/keys"));
        assert!(is_sensitive(&Method::POST, "/v1/keys/{id}/roll"));
        assert!(is_sensitive(&Method::DELETE, "/v1/keys/{id}"));
        assert!(is_sensitive(&Method::POST, "/v1/sys/seal"));
        assert!(is_sensitive(&Method::POST, "/v1/accounts/{name}/keygen"));
        assert!(is_sensitive(&Method::POST, "/v1/sys/test-fault"));
        assert!(is_sensitive(&Method::POST, "/v1/accounts/{name}/freeze"));
        assert!(is_sensitive(&Method::POST, "/v1/approvals/{id}/approve"));
        assert!(is_sensitive(&Method::PUT, "/v1/accounts/{name}/caps/{asset}"));
        assert!(!is_sensitive(&Method::GET, "/v1/keys"));
        assert!(!is_sensitive(&Method::POST, "/v1/keys/verify"));
        assert!(!is_sensitive(&Method::POST, "/v1/auth/token"));
        assert!(!is_sensitive(&Method::PUT, "/v1/secrets/{*path}"));
        assert!(!is_sensitive(&Method::POST, "/proxy/{account}/{*path}"));
        // Made-up methods are never cached, and never sensitive as routes.
        assert!(!is_sensitive(&Method::from_bytes(b"FOOBAR").unwrap(), "/v1/keys"));
    }

    #[test]
    fn every_named_schema_is_registered() {
        let doc = document();
        let schemas = &doc.components.as_ref().expect("components").schemas;
        for r in ROUTES {
            for name in r.body.into_iter().chain(r.ok.1) {
                assert!(
                    schemas.contains_key(name),
                    "{} {} names schema {name} that is not registered",
                    r.method,
                    r.path
                );
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let text = json();
        let doc = document();
        let schemas = &doc.components.as_ref().expect("components").schemas;
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "$ref to {name}, which is not registered");
        }
    }

    #[tokio::test]
    async fn every_documented_route_is_served() {
        use tower::Service;
        let store = std::sync::Arc::new(keyward_store::SqliteStore::in_memory().await.expect("store"));
        let state = super::super::AppState::build(
            store,
            std::sync::Arc::new(keyward_core::clock::SystemClock),
            None,
            crate::config::RuntimeConfig::default(),
        )
        .expect("state");
        let mut app = super::super::app(state);
        for r in ROUTES {
            let path = r.path.replace("{path}", "a/b").replace(['{', '}'], "");
            let method = if r.method == "ANY" { "GET" } else { r.method };
            let req = axum::http::Request::builder().method(method).uri(&path).body(axum::body::Body::empty()).unwrap();
            let resp = app.call(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                status != axum::http::StatusCode::METHOD_NOT_ALLOWED && !text.contains("no such route"),
                "{} {} is documented but not served: {status} {text}",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn docs_openapi_json_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let fresh = json();
        if std::env::var_os("KEYWARD_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &fresh).expect("write docs/openapi.json");
            return;
        }
        let stored = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            stored == fresh,
            "docs/openapi.json is stale: run `KEYWARD_UPDATE_OPENAPI=1 cargo test -p keyward-server openapi` and commit it"
        );
    }
}
