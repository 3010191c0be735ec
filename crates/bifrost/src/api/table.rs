//! The route table: every route of `/api/v1` (and `/metrics`) with who may call it and what the
//! audit trail calls it. The router, the role checks and the OpenAPI description at
//! `/api/v1/openapi.json` are all made from this one table, so they cannot disagree.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use http::StatusCode;
use mover_proto::ErrorBody;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, SecurityRequirement};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use super::audit::Audited;
use super::auth::{identify, peer_ip, reject, COOKIE};
use super::ApiError;
use crate::accounts::Role;
use crate::store::AuditEvent;
use crate::App;

/// Who may call a route. Each role includes the ones below it: admin ⊇ operator ⊇ viewer, and
/// admin ⊇ metrics (Prometheus configs holding the admin token keep working).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Anyone signed in, also a user who must change the password first.
    SignedIn,
    /// Sees connectors, destinations, jobs and reports.
    Viewer,
    /// Authorizes connectors, browses, runs and controls jobs.
    Operator,
    /// Manages accounts, tokens, destinations and settings.
    Admin,
    /// Reads `/metrics`.
    Metrics,
}

impl Access {
    /// Whether `role` may call a route with this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::SignedIn => true,
            Access::Viewer => matches!(role, Role::Admin | Role::Operator | Role::Viewer),
            Access::Operator => matches!(role, Role::Admin | Role::Operator),
            Access::Admin => role == Role::Admin,
            Access::Metrics => matches!(role, Role::Admin | Role::Metrics),
        }
    }

    /// Its name in the OpenAPI description (`x-bifrost-role`).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::SignedIn => "signed_in",
            Access::Viewer => "viewer",
            Access::Operator => "operator",
            Access::Admin => "admin",
            Access::Metrics => "metrics",
        }
    }
}

/// One line of the table: a handler (whose method and path are in its `#[utoipa::path]`), who
/// may call it, and the audit action it records when it succeeds (`None`: a read).
pub struct Entry {
    access: Access,
    action: Option<&'static str>,
    route: UtoipaMethodRouter<Arc<App>>,
}

impl Entry {
    /// A line of the table.
    pub fn new(
        access: Access,
        action: Option<&'static str>,
        route: UtoipaMethodRouter<Arc<App>>,
    ) -> Self {
        Self {
            access,
            action,
            route,
        }
    }
}

/// The whole table: one line per API module.
fn entries() -> Vec<Entry> {
    [
        super::session::routes(),
        super::events::routes(),
        super::connectors::routes(),
        super::destinations::routes(),
        super::jobs::routes(),
        super::audit::routes(),
        super::tokens::routes(),
        super::settings::routes(),
        vec![
            Entry::new(Access::Metrics, None, routes!(crate::metrics::handler)),
            Entry::new(Access::Public, None, routes!(openapi)),
        ],
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What the route guard knows of its route.
#[derive(Clone)]
struct Gate {
    app: Arc<App>,
    access: Access,
    action: Option<&'static str>,
}

/// Lets a call through when its caller may make it, with the caller in the request as an
/// [`super::auth::Actor`]. It runs before the handler's extractors, so a forbidden call is 403
/// whatever its body.
async fn guard(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    if gate.access == Access::Public {
        return next.run(req).await;
    }
    let peer = peer_ip(req.extensions());
    let (headers, method) = (req.headers().clone(), req.method().clone());
    let actor = match identify(&gate.app, &headers, &method, peer).await {
        Ok(actor) => actor,
        Err(answer) => return reject(req, answer).await,
    };
    if actor.must_change && gate.access != Access::SignedIn {
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            "choose a new password first: POST /api/v1/session/password {\"current\", \"new\"}",
        );
        return reject(req, e).await;
    }
    if !gate.access.allows(actor.role) {
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} has the {} role; this needs {}",
                actor.name,
                actor.role,
                gate.access.as_str()
            ),
        );
        return reject(req, e).await;
    }
    let Some(action) = gate.action else {
        req.extensions_mut().insert(actor);
        return next.run(req).await;
    };
    let id = path_id(&req);
    req.extensions_mut().insert(actor.clone());
    let answer = next.run(req).await;
    if answer.status().is_success() {
        let note = answer
            .extensions()
            .get::<Audited>()
            .cloned()
            .unwrap_or_default();
        let event = AuditEvent {
            actor: actor.name,
            role: Some(actor.role.to_string()),
            addr: peer.to_string(),
            action: action.to_owned(),
            target: note.target.or(id),
            detail: note.detail,
        };
        // The change is made; a row that cannot be written is an error for the log, not a
        // reason to tell the caller it failed.
        if let Err(e) = gate.app.store.audit(event).await {
            tracing::error!(error = %e, action, "cannot write the audit row");
        }
    }
    answer
}

/// The route's `{id}`, from the request's path (only a successful call's is recorded, and the
/// handler has checked it by then).
fn path_id(req: &Request) -> Option<String> {
    let template = req.extensions().get::<MatchedPath>()?.as_str();
    template
        .split('/')
        .zip(req.uri().path().split('/'))
        .find(|(t, _)| *t == "{id}")
        .map(|(_, v)| v.to_owned())
}

/// The description the table's handlers add to.
fn base() -> OpenApi {
    let mut doc = OpenApi::builder()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Bifrost API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Bifrost's JSON API. Each operation's `x-bifrost-role` says who may call it; \
                     `x-bifrost-audit` names the audit row a successful call writes.",
                ))
                .build(),
        )
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        utoipa::openapi::security::SecurityScheme::Http(utoipa::openapi::security::Http::new(
            HttpAuthScheme::Bearer,
        )),
    );
    components.add_security_scheme(
        "session",
        utoipa::openapi::security::SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(COOKIE))),
    );
    let (name, schema) = (ErrorBody::name(), ErrorBody::schema());
    components.schemas.insert(name.into_owned(), schema);
    doc
}

/// An error answer in the description.
fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .into()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Adds who may call an operation, how one signs in, and the errors every route can answer.
fn describe(op: &mut Operation, access: Access, action: Option<&str>) {
    let mut ext = ExtensionsBuilder::new().add("x-bifrost-role", access.as_str());
    if let Some(action) = action {
        ext = ext.add("x-bifrost-audit", action);
    }
    op.extensions
        .get_or_insert_with(Default::default)
        .merge(ext.build());
    let params = op.parameters.as_deref().unwrap_or_default();
    let in_path = params
        .iter()
        .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path);
    let mut errors = vec![("400", "malformed request")];
    if in_path {
        errors.push(("404", "no such item"));
    }
    if access != Access::Public {
        op.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
        errors.extend([
            ("401", "not signed in, or a wrong or ended credential"),
            (
                "403",
                "the caller's role may not do this (or a missing CSRF token)",
            ),
            ("429", "too many wrong credentials from this address"),
        ]);
    }
    errors.push(("500", "Bifrost failed"));
    for (status, description) in errors {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(description));
    }
}

/// The OpenAPI description, serialized once.
#[derive(Clone)]
struct Described(Arc<Vec<u8>>);

/// `GET /api/v1/openapi.json`: this API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 description", content_type = "application/json")))]
async fn openapi(Extension(doc): Extension<Described>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        doc.0.as_ref().clone(),
    )
        .into_response()
}

/// The table's routes, each behind its guard, and their description.
pub fn build(app: Arc<App>) -> (Router<Arc<App>>, OpenApi) {
    let mut api = OpenApiRouter::with_openapi(base());
    for Entry {
        access,
        action,
        route: (schemas, mut paths, method_router),
    } in entries()
    {
        for op in paths.paths.values_mut().flat_map(operations) {
            describe(op, access, action);
        }
        let gate = Gate {
            app: app.clone(),
            access,
            action,
        };
        let method_router = method_router.route_layer(middleware::from_fn_with_state(gate, guard));
        api = api.routes((schemas, paths, method_router));
    }
    api.split_for_parts()
}

/// The table's routes, with `/api/v1/openapi.json` serving their description.
pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    let (router, doc) = build(app);
    let json = doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize the OpenAPI description");
        String::from("{}")
    });
    router.layer(Extension(Described(Arc::new(json.into_bytes()))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roles_include_the_ones_below_them() {
        use Role::*;
        let who = |a: Access| {
            Role::ALL
                .into_iter()
                .filter(|r| a.allows(*r))
                .collect::<Vec<_>>()
        };
        assert_eq!(who(Access::Viewer), vec![Admin, Operator, Viewer]);
        assert_eq!(who(Access::Operator), vec![Admin, Operator]);
        assert_eq!(who(Access::Admin), vec![Admin]);
        assert_eq!(who(Access::Metrics), vec![Admin, Metrics]);
        assert_eq!(who(Access::SignedIn), Role::ALL.to_vec());
    }

    /// Every operation says who may call it, signed-in ones how, and the description is 3.1.
    #[tokio::test]
    async fn every_operation_says_who_may_call_it() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::open(dir.path(), "token".into(), Default::default())
            .await
            .unwrap();
        let (_, doc) = build(app);
        let doc: serde_json::Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut seen = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(path.starts_with("/api/v1/") || path == "/metrics", "{path}");
            for (method, op) in item.as_object().unwrap() {
                let role = op["x-bifrost-role"].as_str().unwrap();
                let secured = op.get("security").is_some();
                assert_eq!(secured, role != "public", "{method} {path}");
                assert!(op["responses"].get("500").is_some(), "{method} {path}");
                seen.push(format!("{method} {path} {role}"));
            }
        }
        for must in [
            "post /api/v1/session public",
            "get /api/v1/jobs viewer",
            "post /api/v1/jobs operator",
            "post /api/v1/destinations admin",
            "get /metrics metrics",
            "get /api/v1/openapi.json public",
        ] {
            assert!(seen.iter().any(|s| s == must), "{must} not in {seen:?}");
        }
    }
}
