//! `/api/v1/tokens`: admins make scoped API tokens (shown once), list them (never their
//! secrets) and revoke them. The work is in `tokens.rs`; this maps it to HTTP.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Extension;
use http::StatusCode;
use mover_proto::tokens::{CreatedToken, NewToken, Token};

use super::auth::Actor;
use super::{ApiError, Json};
use crate::accounts::Role;
use crate::store::unix_now;
use crate::tokens::{self, TokenError};
use crate::App;

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(m) => Self::bad_request(m),
            TokenError::TooMany => Self::conflict(e.to_string()),
            TokenError::NotFound => Self::not_found(e.to_string()),
            TokenError::Random(_) | TokenError::Store(_) => Self::internal(e),
        }
    }
}

/// Only an admin manages tokens. The route table (issue 17, slice 2) will guard these routes by
/// role before any extractor runs; until then each handler calls this first. Remove it then.
fn admin_only(actor: &Actor) -> Result<(), ApiError> {
    if actor.role == Role::Admin {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "only an admin manages API tokens; {} has the role {}",
            actor.name, actor.role
        ),
    ))
}

/// `POST /api/v1/tokens {"name", "role", "expires"}`: a new token, its secret shown this once.
/// The body is taken as a `Result` so that a non-admin gets 403 whatever it sent.
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<NewToken>, ApiError>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), ApiError> {
    admin_only(&actor)?;
    let Json(req) = body?;
    let created = tokens::create(&app.store, req, &actor.name, unix_now()).await?;
    tracing::info!(
        id = %created.info.id,
        token = %created.info.name,
        role = %created.info.role,
        by = %actor.name,
        "API token created"
    );
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// `GET /api/v1/tokens`: every API token, revoked and expired ones too, without secrets.
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
) -> Result<axum::Json<Vec<Token>>, ApiError> {
    admin_only(&actor)?;
    let rows = app.store.tokens().await?;
    Ok(axum::Json(rows.into_iter().map(tokens::listed).collect()))
}

/// `DELETE /api/v1/tokens/{id}`: revokes the token and ends the sessions made with it (204).
pub async fn revoke(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin_only(&actor)?;
    let ended = tokens::revoke(&app.store, &id).await?;
    tracing::info!(%id, ended, by = %actor.name, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
