//! `/api/v1/tokens`: admins make scoped API tokens (shown once), list them (never their
//! secrets) and revoke them. The work is in `tokens.rs`; this maps it to HTTP.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Extension;
use http::StatusCode;
use mover_proto::tokens::{CreatedToken, NewToken, Token};
use mover_proto::ErrorBody;

use super::audit::Audited;
use super::auth::Actor;
use super::table::{Access, Entry};
use super::{ApiError, Json};
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

/// The token routes: admins only.
pub fn routes() -> Vec<Entry> {
    use utoipa_axum::routes;
    vec![
        Entry::new(Access::Admin, Some("token.create"), routes!(create)),
        Entry::new(Access::Admin, None, routes!(list)),
        Entry::new(Access::Admin, Some("token.revoke"), routes!(revoke)),
    ]
}

/// `POST /api/v1/tokens {"name", "role", "expires"}`: a new token, its secret shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 409, body = ErrorBody, description = "too many live tokens")))]
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    Json(req): Json<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
    let created = tokens::create(&app.store, req, &actor.name, unix_now()).await?;
    tracing::info!(
        id = %created.info.id,
        token = %created.info.name,
        role = %created.info.role,
        by = %actor.name,
        "API token created"
    );
    let note = Audited::target(&created.info.id)
        .detail(format!("{} ({})", created.info.name, created.info.role));
    Ok((StatusCode::CREATED, Extension(note), axum::Json(created)))
}

/// `GET /api/v1/tokens`: every API token, revoked and expired ones too, without secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<Token>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<axum::Json<Vec<Token>>, ApiError> {
    let rows = app.store.tokens().await?;
    Ok(axum::Json(rows.into_iter().map(tokens::listed).collect()))
}

/// `DELETE /api/v1/tokens/{id}`: revokes the token and ends the sessions made with it (204).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ended = tokens::revoke(&app.store, &id).await?;
    tracing::info!(%id, ended, by = %actor.name, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
