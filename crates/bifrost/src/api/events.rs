//! `GET /api/v1/events`: server-sent events with the connector and job lists whenever they change.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::App;

/// How often the lists are compared with what the client has.
const TICK: Duration = Duration::from_millis(500);

/// The event stream.
pub async fn events(
    State(app): State<Arc<App>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(4);
    tokio::spawn(async move {
        let (mut last_connectors, mut last_jobs) = (String::new(), String::new());
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tx.closed() => return,
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
