//! Console sign-in: the admin token buys an HttpOnly session cookie and a CSRF token. Wrong
//! tokens, here and as bearer tokens, are slowed down and limited per address
//! (`wrong_token.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use mover_proto::api::{Login, SessionInfo};

use super::wrong_token::{retry_after, WrongTokens};
use super::{ApiError, Json};
use crate::store::unix_now;
use crate::tunnel::Peer;
use crate::App;

/// The session cookie's name.
pub const COOKIE: &str = "bifrost_session";
/// The header a console session's state-changing calls carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a console session lasts.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b)
        .map_err(|e| ApiError::internal(format!("the OS random source failed: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The address a request came from (the server puts it in every request).
fn peer_ip(extensions: &http::Extensions) -> std::net::IpAddr {
    extensions
        .get::<Peer>()
        .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |p| p.0.ip())
}

/// `429` with `Retry-After`: this address has sent too many wrong tokens.
fn too_many(wait: Duration) -> Response {
    let secs = retry_after(wait);
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many wrong admin tokens from this address; try again in {secs} s"),
    )
    .into_response();
    res.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// The answer to a wrong token: `401` after a short delay, or `429` past the limit.
async fn wrong(app: &App, peer: std::net::IpAddr, error: ApiError) -> Response {
    match app.wrong_tokens.charge(peer, tokio::time::Instant::now()) {
        Ok(()) => {
            tokio::time::sleep(WrongTokens::delay()).await;
            error.into_response()
        }
        Err(wait) => too_many(wait),
    }
}

/// `POST /api/v1/session {"token"}`: signs in.
pub async fn login(
    State(app): State<Arc<App>>,
    extensions: http::Extensions,
    Json(req): Json<Login>,
) -> Result<Response, ApiError> {
    let peer = peer_ip(&extensions);
    if let Err(wait) = app.wrong_tokens.blocked(peer, tokio::time::Instant::now()) {
        return Ok(too_many(wait));
    }
    if !constant_time_eq(req.token.trim().as_bytes(), app.admin_token.as_bytes()) {
        let e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "that is not the admin token (it is in DATA/admin.token)",
        );
        return Ok(wrong(&app, peer, e).await);
    }
    let (token, csrf) = (random_hex(32)?, random_hex(16)?);
    app.store
        .create_session(
            hash(&token),
            csrf.clone(),
            unix_now() + LIFETIME.as_secs() as i64,
        )
        .await?;
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        LIFETIME.as_secs()
    );
    let mut res = axum::Json(SessionInfo {
        signed_in: true,
        csrf,
    })
    .into_response();
    res.headers_mut().insert(
        http::header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(res)
}

/// `GET /api/v1/session`: whether the caller is signed in, and its CSRF token. Answers 200
/// either way, so a console opened while signed out loads without an error.
pub async fn current(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<axum::Json<SessionInfo>, ApiError> {
    let csrf = match cookie(&headers, COOKIE) {
        Some(token) => app.store.session(hash(&token)).await?,
        None => None,
    };
    Ok(axum::Json(SessionInfo {
        signed_in: csrf.is_some(),
        csrf: csrf.unwrap_or_default(),
    }))
}

/// `DELETE /api/v1/session`: signs out.
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

/// Answers with `error` after reading (a bounded amount of) the request body: closing a
/// connection with unread bytes resets it, and the client may lose the answer.
async fn reject(req: Request, error: impl IntoResponse) -> Response {
    let _ = axum::body::to_bytes(req.into_body(), 1024 * 1024).await;
    error.into_response()
}

/// Lets a request through with `Authorization: Bearer ADMIN-TOKEN` (scripts), or with a console
/// session cookie plus, for anything but reads, the session's CSRF token.
pub async fn require_admin(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(given) = bearer {
        let peer = peer_ip(req.extensions());
        if let Err(wait) = app.wrong_tokens.blocked(peer, tokio::time::Instant::now()) {
            return reject(req, too_many(wait)).await;
        }
        if constant_time_eq(given.trim().as_bytes(), app.admin_token.as_bytes()) {
            return next.run(req).await;
        }
        let answer = wrong(
            &app,
            peer,
            ApiError::new(StatusCode::UNAUTHORIZED, "wrong admin token"),
        )
        .await;
        return reject(req, answer).await;
    }
    let Some(token) = cookie(req.headers(), COOKIE) else {
        let e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign in first, or send Authorization: Bearer ADMIN-TOKEN",
        );
        return reject(req, e).await;
    };
    let csrf = match app.store.session(hash(&token)).await {
        Ok(Some(csrf)) => csrf,
        Ok(None) => {
            return reject(
                req,
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "your session has ended; sign in again",
                ),
            )
            .await
        }
        Err(e) => return reject(req, ApiError::from(e)).await,
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    let given = req
        .headers()
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    if !safe && !constant_time_eq(&given, csrf.as_bytes()) {
        return reject(
            req,
            ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token; reload the console",
            ),
        )
        .await;
    }
    next.run(req).await
}
