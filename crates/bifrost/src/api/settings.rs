//! `/api/v1/settings`: Bifrost-wide settings, today the allowed destination roots. Any signed-in
//! role reads them (a refused job names them anyway); only an admin changes them.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::{Extension, Json as Reply};
use http::StatusCode;
use mover_proto::settings::Settings;

use super::audit::Audited;
use super::auth::Actor;
use super::table::{Access, Entry};
use super::{ApiError, Json};
use crate::allowed_roots::{self, RootsError};
use crate::App;

impl From<RootsError> for ApiError {
    fn from(e: RootsError) -> Self {
        match e {
            RootsError::Invalid(m) => ApiError::bad_request(m),
            RootsError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            RootsError::Store(e) => e.into(),
        }
    }
}

/// The settings routes: any role that sees the lists reads them; admins change them.
pub fn routes() -> Vec<Entry> {
    use utoipa_axum::routes;
    vec![
        Entry::new(Access::Viewer, None, routes!(get)),
        Entry::new(Access::Admin, Some("settings.edit"), routes!(put)),
    ]
}

/// `GET /settings`.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", responses((status = 200, body = Settings)))]
pub async fn get(State(app): State<Arc<App>>) -> Result<Reply<Settings>, ApiError> {
    Ok(Reply(Settings {
        allowed_roots: app.store.allowed_roots().await?,
    }))
}

/// `PUT /settings {"allowed_roots": [...]}`: replaces them (`[]`: none, any folder); answers
/// the settings as stored (normalized, without duplicates).
#[utoipa::path(put, path = "/api/v1/settings", tag = "settings", request_body = Settings,
    responses((status = 200, body = Settings)))]
pub async fn put(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    Json(given): Json<Settings>,
) -> Result<impl IntoResponse, ApiError> {
    let allowed_roots = allowed_roots::set(&app.store, given.allowed_roots).await?;
    tracing::info!(actor = %actor.name, roots = allowed_roots.len(), "settings changed");
    let detail = format!("allowed roots: {}", shown(&allowed_roots));
    let note = Audited::target("allowed_roots").detail(detail);
    Ok((Extension(note), Reply(Settings { allowed_roots })))
}

/// The roots as the audit row shows them, bounded (up to 64 paths of up to 4 KiB each).
fn shown(roots: &[String]) -> String {
    if roots.is_empty() {
        return "none (any folder)".into();
    }
    let all = roots.join(", ");
    if all.len() <= 1024 {
        return all;
    }
    let cut = (0..=1024)
        .rev()
        .find(|i| all.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}… ({} roots)", &all[..cut], roots.len())
}
