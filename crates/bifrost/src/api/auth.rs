//! Who is calling: `Authorization: Bearer TOKEN` (scripts, Prometheus: the bootstrap admin token
//! or an API token, looked up by hash), or a console session cookie plus, for anything but
//! reads, the session's CSRF token. What the caller may do is decided by the route table
//! (`table.rs`), which puts the caller in the request as an [`Actor`].

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::wrong_token::{retry_after, WrongTokens};
use super::ApiError;
use crate::accounts::Role;
use crate::store::{unix_now, Liveness, SessionRow, TokenRow};
use crate::tunnel::Peer;
use crate::App;

/// The session cookie's name.
pub const COOKIE: &str = "bifrost_session";
/// The header a console session's state-changing calls carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The name the bootstrap admin token acts under.
pub const TOKEN_ACTOR: &str = "admin token";
/// What an API token's actor name starts with, before the token's name.
pub const API_TOKEN_ACTOR: &str = "token:";

/// The caller of an API request, put in its extensions by the route table's guard.
#[derive(Clone)]
pub struct Actor {
    /// Account name, [`TOKEN_ACTOR`], or [`API_TOKEN_ACTOR`] and an API token's name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Account id; `None` for a token.
    pub user_id: Option<String>,
    /// Must choose a new password before anything else.
    pub must_change: bool,
    /// The console session, if the call came with one: its cookie's hash and CSRF token.
    pub session: Option<(String, String)>,
}

impl Actor {
    /// A token's actor, with a session or as a bearer token.
    pub fn of_token(t: &TokenRow, session: Option<(String, String)>) -> Self {
        let name = if t.bootstrap {
            TOKEN_ACTOR.to_owned()
        } else {
            format!("{API_TOKEN_ACTOR}{}", t.name)
        };
        Self {
            name,
            role: t.role,
            user_id: None,
            must_change: false,
            session,
        }
    }

    /// The actor of a live session row (the store ends one that is neither an account's nor
    /// a token's).
    pub fn of_session(row: SessionRow, hash: String) -> Option<Self> {
        let session = Some((hash, row.csrf));
        match (row.user, row.token) {
            (Some(u), _) => Some(Self {
                name: u.name,
                role: u.role,
                user_id: Some(u.id),
                must_change: u.must_change,
                session,
            }),
            (None, Some(t)) => Some(Self::of_token(&t, session)),
            (None, None) => None,
        }
    }
}

/// BLAKE3 of a session cookie, hex: the database keeps only this.
pub fn hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Compares without an early exit, so the time taken does not tell how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The bearer token of `Authorization: Bearer TOKEN`, if the request has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The address a request came from (the server puts it in every request).
pub fn peer_ip(extensions: &http::Extensions) -> IpAddr {
    extensions
        .get::<Peer>()
        .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |p| p.0.ip())
}

/// How sessions are judged now; `touch`: this request is a use of the session.
pub fn liveness(app: &App, touch: bool) -> Liveness {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4);
    Liveness {
        now: unix_now(),
        idle: secs(app.sessions.idle),
        max: secs(app.sessions.max),
        touch_every: touch.then(|| secs(app.sessions.touch_every())),
    }
}

/// What [`too_many`] says when an address is past its limit.
pub const FROM_ADDRESS: &str = "too many wrong tokens or passwords from this address";
/// What [`too_many`] says when an account is past its limit.
pub const FOR_ACCOUNT: &str = "too many failed sign-ins for this account";

/// `429` with `Retry-After`: `what` (one of the constants above) and how long to wait.
pub fn too_many(wait: Duration, what: &str) -> Response {
    let secs = retry_after(wait);
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("{what}; try again in {secs} s"),
    )
    .into_response();
    res.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// The answer to a wrong credential from `peer`: `401` after a short delay, or `429` past the
/// address's limit.
pub async fn wrong(app: &App, peer: IpAddr, error: ApiError) -> Response {
    match app.wrong_tokens.charge(peer, tokio::time::Instant::now()) {
        Ok(()) => {
            tokio::time::sleep(WrongTokens::delay()).await;
            error.into_response()
        }
        Err(wait) => too_many(wait, FROM_ADDRESS),
    }
}

/// Answers with `error` after reading (a bounded amount of) the request body: closing a
/// connection with unread bytes resets it, and the client may lose the answer.
pub async fn reject(req: Request, error: impl IntoResponse) -> Response {
    let _ = axum::body::to_bytes(req.into_body(), 1024 * 1024).await;
    error.into_response()
}

/// Who is calling: a live token (the bootstrap admin token or an API token) as a bearer token,
/// or a live console session cookie plus, for anything but reads, the session's CSRF token.
/// Each call looks its token or session up in the database, so one that a `bifrost user` or
/// `bifrost token` command (or an admin's revoke) ended, or that expired or idled out, is
/// refused at once. `Err` is the answer that refuses the call.
pub async fn identify(
    app: &App,
    headers: &HeaderMap,
    method: &Method,
    peer: IpAddr,
) -> Result<Actor, Response> {
    if let Some(given) = bearer(headers) {
        if let Err(wait) = app.wrong_tokens.blocked(peer, tokio::time::Instant::now()) {
            return Err(too_many(wait, FROM_ADDRESS));
        }
        // Looked up by its hash, so no secret is compared and the time taken tells nothing.
        let found = app
            .store
            .live_token(crate::tokens::hash(given), unix_now())
            .await;
        return match found {
            Ok(Some(t)) => Ok(Actor::of_token(&t, None)),
            Ok(None) => {
                let e = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "wrong token, or one that was revoked, rotated or has expired",
                );
                Err(wrong(app, peer, e).await)
            }
            Err(e) => Err(ApiError::from(e).into_response()),
        };
    }
    let Some(token) = cookie(headers, COOKIE) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign in first, or send Authorization: Bearer TOKEN",
        )
        .into_response());
    };
    let hashed = hash(&token);
    let actor = match app.store.session(hashed.clone(), liveness(app, true)).await {
        Ok(Some(row)) => Actor::of_session(row, hashed),
        Ok(None) => None,
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let Some(actor) = actor else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "your session has ended; sign in again",
        )
        .into_response());
    };
    let safe = matches!(*method, Method::GET | Method::HEAD);
    let given = headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let csrf = actor
        .session
        .as_ref()
        .map(|s| s.1.as_bytes())
        .unwrap_or_default();
    if !safe && !constant_time_eq(&given, csrf) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token; reload the console",
        )
        .into_response());
    }
    Ok(actor)
}
