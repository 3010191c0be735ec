//! `/api/v1/settings`: Bifrost-wide settings, today the allowed destination roots. Any signed-in
//! role reads them (a refused job names them anyway); only an admin changes them.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json as Reply};
use http::StatusCode;
use mover_proto::settings::Settings;

use super::auth::Actor;
use super::{ApiError, Json};
use crate::accounts::Role;
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

/// Refuses anyone but an admin. Stands in until the route table (issue 17, slice 2) guards
/// each route by role; remove it then.
fn admin_only(actor: &Actor) -> Result<(), ApiError> {
    if actor.role == Role::Admin {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "only an admin may change settings; {} is {}",
            actor.name, actor.role
        ),
    ))
}

/// `GET /settings`.
pub async fn get(State(app): State<Arc<App>>) -> Result<Reply<Settings>, ApiError> {
    Ok(Reply(Settings {
        allowed_roots: app.store.allowed_roots().await?,
    }))
}

/// `PUT /settings {"allowed_roots": [...]}`: replaces them (`[]`: none, any folder); answers
/// the settings as stored (normalized, without duplicates).
pub async fn put(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    // Read after the role check, so a caller who may not change settings gets 403 whatever
    // the body is.
    body: Result<Json<Settings>, ApiError>,
) -> Result<Reply<Settings>, ApiError> {
    admin_only(&actor)?;
    let Json(given) = body?;
    let allowed_roots = allowed_roots::set(&app.store, given.allowed_roots).await?;
    tracing::info!(actor = %actor.name, roots = allowed_roots.len(), "settings changed");
    Ok(Reply(Settings { allowed_roots }))
}
