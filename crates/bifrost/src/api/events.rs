//! `GET /api/v1/events`: server-sent events with the connector and job lists whenever they change.
//! A stream of a console session ends when the session does (signed out, idle, disabled), and
//! one opened with a bearer token when the token does (revoked, rotated, expired).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::auth::{bearer, liveness, Actor};
use super::table::{Access, Entry};
use crate::store::unix_now;
use crate::App;

/// The event stream's route: anyone who may see the lists.
pub fn routes() -> Vec<Entry> {
    vec![Entry::new(
        Access::Viewer,
        None,
        utoipa_axum::routes!(events),
    )]
}

/// How often the lists are compared with what the client has.
const TICK: Duration = Duration::from_millis(500);
/// Every this many ticks the stream's session or token is looked up again.
const SESSION_TICKS: u64 = 2;

/// The event stream.
#[utoipa::path(get, path = "/api/v1/events", tags = ["events", "stream"],
    responses((status = 200, description = "Server-sent events: `connectors` and `jobs`, each the whole list as JSON", content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    headers: http::HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Only the hash is kept: the secret does not live on in the task.
    let token = if actor.session.is_none() {
        bearer(&headers).map(crate::tokens::hash)
    } else {
        None
    };
    let (tx, rx) = mpsc::channel::<Event>(4);
    tokio::spawn(async move {
        let (mut last_connectors, mut last_jobs) = (String::new(), String::new());
        let mut tick = tokio::time::interval(TICK);
        for n in 0u64.. {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tx.closed() => return,
            }
            if n % SESSION_TICKS == 0 && !still_allowed(&app, &actor, token.as_deref()).await {
                return;
            }
            let connectors = crate::connectors::all(&app)
                .await
                .ok()
                .and_then(|c| serde_json::to_string(&c).ok());
            let jobs = crate::jobs::all(&app)
                .await
                .ok()
                .and_then(|j| serde_json::to_string(&j).ok());
            for (name, now, last) in [
                ("connectors", connectors, &mut last_connectors),
                ("jobs", jobs, &mut last_jobs),
            ] {
                let Some(now) = now else { continue };
                if now != *last {
                    if tx
                        .send(Event::default().event(name).data(&now))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    *last = now;
                }
            }
        }
    });
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Whether the stream's caller still may read it: its session is live, or the bearer token
/// (by hash) it was opened with still works. A session is only looked at (an open stream does
/// not keep an idle session alive); a token is used, which writes its `last_used` now and then.
async fn still_allowed(app: &App, actor: &Actor, token: Option<&str>) -> bool {
    match (&actor.session, token) {
        (Some((hash, _)), _) => matches!(
            app.store.session(hash.clone(), liveness(app, false)).await,
            Ok(Some(_))
        ),
        (None, Some(hash)) => matches!(
            app.store.live_token(hash.to_owned(), unix_now()).await,
            Ok(Some(_))
        ),
        (None, None) => true,
    }
}
