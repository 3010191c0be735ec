//! Console sign-in: an account's name and password, or a token (the bootstrap admin token or an
//! API token, acting with its role), buys an HttpOnly session cookie and a CSRF token; a user with a one-time password chooses a new one here.
//! Wrong credentials are slowed down and limited per address and per account
//! (`wrong_token.rs`); who is calling is checked in `auth.rs`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{HeaderMap, HeaderValue, StatusCode};
use mover_proto::api::{Login, PasswordChange, SessionInfo};
use mover_proto::ErrorBody;

use super::auth::{
    cookie, hash, liveness, peer_ip, too_many, wrong, Actor, COOKIE, FOR_ACCOUNT, FROM_ADDRESS,
};
use super::table::{Access, Entry};
use super::{ApiError, Json};
use crate::accounts::{check_new_password, Secret};
use crate::store::{unix_now, SessionRow, Via};
use crate::App;

/// The session routes and who may call them. A user with a one-time password may only choose
/// a new one or sign out.
pub fn routes() -> Vec<Entry> {
    use utoipa_axum::routes;
    use Access::{Public, SignedIn};
    vec![
        Entry::new(Public, None, routes!(login)),
        Entry::new(Public, None, routes!(current)),
        Entry::new(SignedIn, Some("sign_out"), routes!(logout)),
        Entry::new(SignedIn, Some("password.change"), routes!(change_password)),
    ]
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b)
        .map_err(|e| ApiError::internal(format!("the OS random source failed: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn info(actor: &Actor) -> SessionInfo {
    SessionInfo {
        signed_in: true,
        csrf: actor
            .session
            .as_ref()
            .map(|s| s.1.clone())
            .unwrap_or_default(),
        name: Some(actor.name.clone()),
        role: Some(actor.role),
        must_change: actor.must_change,
    }
}

/// `POST /api/v1/session {"name", "password"}` or `{"token"}`: signs in.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Login,
    responses((status = 200, body = SessionInfo, description = "Signed in; the session cookie is set"),
        (status = 401, body = ErrorBody, description = "wrong name, password or token"),
        (status = 403, body = ErrorBody, description = "the account is disabled"),
        (status = 429, body = ErrorBody, description = "too many failed sign-ins")))]
pub async fn login(
    State(app): State<Arc<App>>,
    extensions: http::Extensions,
    Json(req): Json<Login>,
) -> Result<Response, ApiError> {
    let peer = peer_ip(&extensions);
    let now = tokio::time::Instant::now();
    if let Err(wait) = app.wrong_tokens.blocked(peer, now) {
        return Ok(too_many(wait, FROM_ADDRESS));
    }
    let (user, signed_with) = match (req.name, req.password, req.token) {
        (None, None, Some(token)) => {
            let hashed = crate::tokens::hash(token.expose());
            match app.store.live_token(hashed, unix_now()).await? {
                Some(t) => (None, Some(t)),
                None => {
                    let e = ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "that is not the admin token (it is in DATA/admin.token) nor a live API token",
                    );
                    record(
                        &app,
                        "(unknown token)".to_owned(),
                        None,
                        peer,
                        "sign_in_failed",
                    )
                    .await;
                    return Ok(wrong(&app, peer, e).await);
                }
            }
        }
        (Some(name), Some(password), None) => {
            let name = name.trim().to_owned();
            if let Err(wait) = app.wrong_tokens.account_blocked(&name, now) {
                return Ok(too_many(wait, FOR_ACCOUNT));
            }
            let found = app.store.user_for_login(name.clone()).await?;
            let phc = found.as_ref().map(|(_, h)| h.clone());
            let right = app
                .hasher
                .verify(password, phc)
                .await
                .map_err(ApiError::internal)?;
            match found {
                Some((user, _)) if right && user.disabled => {
                    record(&app, user.name, Some(user.role), peer, "sign_in_failed").await;
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "this account is disabled; ask an admin",
                    ));
                }
                Some((user, _)) if right => (Some(user), None),
                _ => return Ok(failed_sign_in(&app, peer, &name).await),
            }
        }
        _ => return Err(ApiError::bad_request(
            "send {\"name\", \"password\"}, or {\"token\"} with the admin token or an API token",
        )),
    };
    let (token, csrf) = (random_hex(32)?, random_hex(16)?);
    let hashed = hash(&token);
    let via = match (&user, &signed_with) {
        (Some(u), _) => Via::Password(u.id.clone()),
        (None, Some(t)) => Via::Token(t.id.clone()),
        (None, None) => {
            return Err(ApiError::internal(
                "a sign-in with neither account nor token",
            ))
        }
    };
    app.store
        .create_session(hashed.clone(), csrf.clone(), via, liveness(&app, true))
        .await?;
    let row = SessionRow {
        csrf,
        user,
        token: signed_with,
    };
    let actor = Actor::of_session(row, hashed)
        .ok_or_else(|| ApiError::internal("a sign-in with neither account nor token"))?;
    tracing::info!(actor = %actor.name, role = %actor.role, %peer, "signed in");
    record(&app, actor.name.clone(), Some(actor.role), peer, "sign_in").await;
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        app.sessions.max.as_secs()
    );
    let mut res = axum::Json(info(&actor)).into_response();
    res.headers_mut().insert(
        http::header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(res)
}

/// Longest actor name an audit row keeps of a failed sign-in (the name is the caller's word).
const MAX_AUDIT_NAME_CHARS: usize = 128;

/// Appends a sign-in row to the audit trail; a failure to is logged.
async fn record(
    app: &App,
    actor: String,
    role: Option<crate::accounts::Role>,
    peer: std::net::IpAddr,
    action: &str,
) {
    let event = crate::store::AuditEvent {
        actor: actor.chars().take(MAX_AUDIT_NAME_CHARS).collect(),
        role: role.map(|r| r.to_string()),
        addr: peer.to_string(),
        action: action.to_owned(),
        target: None,
        detail: None,
    };
    if let Err(e) = app.store.audit(event).await {
        tracing::error!(error = %e, action, "cannot write the audit row");
    }
}

/// A wrong name or password: counted against the account and the address, answered alike
/// whether or not the account exists.
async fn failed_sign_in(app: &App, peer: std::net::IpAddr, name: &str) -> Response {
    tracing::info!(user = %name, %peer, "sign-in failed");
    record(app, name.to_owned(), None, peer, "sign_in_failed").await;
    if let Err(wait) = app
        .wrong_tokens
        .charge_account(name, tokio::time::Instant::now())
    {
        return too_many(wait, FOR_ACCOUNT);
    }
    let e = ApiError::new(StatusCode::UNAUTHORIZED, "wrong name or password");
    wrong(app, peer, e).await
}

/// `GET /api/v1/session`: whether the caller is signed in, as whom, and its CSRF token.
/// Answers 200 either way, so a console opened while signed out loads without an error. A
/// look, not a use: it does not keep an idle session alive.
#[utoipa::path(get, path = "/api/v1/session", tag = "session", responses((status = 200, body = SessionInfo)))]
pub async fn current(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<axum::Json<SessionInfo>, ApiError> {
    let Some(token) = cookie(&headers, COOKIE) else {
        return Ok(axum::Json(SessionInfo::signed_out()));
    };
    let hashed = hash(&token);
    Ok(axum::Json(
        match app
            .store
            .session(hashed.clone(), liveness(&app, false))
            .await?
        {
            Some(row) => Actor::of_session(row, hashed)
                .as_ref()
                .map_or_else(SessionInfo::signed_out, info),
            None => SessionInfo::signed_out(),
        },
    ))
}

/// `POST /api/v1/session/password {"current", "new"}`: the signed-in user chooses a new
/// password (what a one-time password requires first). The user's other sessions end.
#[utoipa::path(post, path = "/api/v1/session/password", tag = "session", request_body = PasswordChange,
    responses((status = 200, body = SessionInfo), (status = 409, body = ErrorBody, description = "the caller has no password (a token)")))]
pub async fn change_password(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    extensions: http::Extensions,
    Json(req): Json<PasswordChange>,
) -> Result<Response, ApiError> {
    let Some(user_id) = actor.user_id.clone() else {
        return Err(ApiError::conflict(
            "a token has no password; sign in with an account to change its password",
        ));
    };
    let peer = peer_ip(&extensions);
    let now = tokio::time::Instant::now();
    if let Err(wait) = app.wrong_tokens.blocked(peer, now) {
        return Ok(too_many(wait, FROM_ADDRESS));
    }
    if let Err(wait) = app.wrong_tokens.account_blocked(&actor.name, now) {
        return Ok(too_many(wait, FOR_ACCOUNT));
    }
    let phc = app.store.password_hash(user_id.clone()).await?;
    let right = app
        .hasher
        .verify(req.current.clone(), phc)
        .await
        .map_err(ApiError::internal)?;
    if !right {
        return Ok(failed_sign_in(&app, peer, &actor.name).await);
    }
    check_new_password(&req.current, &req.new).map_err(ApiError::bad_request)?;
    let new: Secret = req.new;
    let phc = app.hasher.hash(new).await.map_err(ApiError::internal)?;
    let keep = actor.session.as_ref().map(|s| s.0.clone());
    app.store.set_password(user_id, phc, keep).await?;
    tracing::info!(user = %actor.name, "password changed");
    let actor = Actor {
        must_change: false,
        ..actor
    };
    Ok(axum::Json(info(&actor)).into_response())
}

/// `DELETE /api/v1/session`: signs out.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204, description = "Signed out")))]
pub async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie(&headers, COOKIE) {
        app.store.delete_session(hash(&token)).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    let clear = format!("{COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0");
    res.headers_mut().insert(
        http::header::SET_COOKIE,
        HeaderValue::from_str(&clear).map_err(ApiError::internal)?,
    );
    Ok(res)
}
