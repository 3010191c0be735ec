//! Follows an agent's event stream: the async shell around `throttle.rs`, which decides what
//! is acted on and when.

use std::sync::Arc;

use futures_util::StreamExt;
use http_body_util::BodyExt;
use mover_proto::AgentEvent;
use tokio::time::Instant;

use super::throttle::{Act, Lines, Throttle};
use crate::agent_client::AgentClient;
use crate::App;

/// Reads the agent's event stream, keeping its info current, until it ends or breaks a limit.
pub async fn follow(app: Arc<App>, client: AgentClient, hash: String, conn_id: u64) {
    let res = match client.events().await {
        Ok(res) => res,
        Err(e) => {
            tracing::warn!(error = %e, "agent event stream");
            return;
        }
    };
    let mut body = res.into_body().into_data_stream();
    let mut lines = Lines::default();
    let mut throttle = Throttle::new(Instant::now());
    let mut armed = false;
    loop {
        let due = throttle.due(Instant::now());
        let acts = tokio::select! {
            chunk = body.next() => {
                let Some(Ok(chunk)) = chunk else { return };
                let Ok(complete) = lines.push(chunk) else {
                    tracing::warn!(key = %&hash[..8], "agent event line too long; closing the event stream");
                    return;
                };
                let now = Instant::now();
                complete
                    .iter()
                    .filter_map(|line| match serde_json::from_slice::<AgentEvent>(line) {
                        Ok(event) => throttle.offer(event, now),
                        Err(e) => {
                            tracing::warn!(error = %e, "malformed agent event");
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            }
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                throttle.release(Instant::now())
            }
        };
        for act in acts {
            apply(&app, &hash, conn_id, act, &mut armed).await;
        }
    }
}

async fn apply(app: &Arc<App>, hash: &str, conn_id: u64, act: Act, armed: &mut bool) {
    match act {
        Act::Hello(info) => {
            let info = super::clip_info(info);
            app.registry.set_info(hash, conn_id, info.clone());
            if let Some(id) = app.registry.by_key(hash).and_then(|l| l.connector) {
                let _ = app
                    .store
                    .touch_connector(id.clone(), info.version, info.os, info.host, info.roots)
                    .await;
                // A (re)connected agent watches the kept-in-sync sources again.
                if !*armed {
                    *armed = true;
                    crate::engine::arm_sync(app, &id).await;
                }
            }
        }
        Act::Changed(roots) => {
            if let Some(id) = app.registry.by_key(hash).and_then(|l| l.connector) {
                crate::engine::on_changed(app, &id, roots).await;
            }
        }
    }
}
