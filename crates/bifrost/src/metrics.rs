//! Prometheus metrics at `/metrics`: what Bifrost has copied and failed, and what it is doing now.
//!
//! File counters are tallied where the database records a file's result, so they agree with
//! the job reports; they count from this process's start, as Prometheus counters do.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use mover_proto::api::FileStatus;

use crate::App;

/// File results recorded since Bifrost started.
#[derive(Default)]
pub struct Tally {
    files_copied: AtomicU64,
    bytes_copied: AtomicU64,
    files_skipped: AtomicU64,
    bytes_skipped: AtomicU64,
    files_deleted: AtomicU64,
    failed: Mutex<BTreeMap<&'static str, u64>>,
    /// Files and bytes copied, by the kind of destination they landed in.
    landed: Mutex<BTreeMap<&'static str, (u64, u64)>>,
}

impl Tally {
    /// Counts `files` copied files of `bytes` into a destination of `kind`.
    pub fn landed(&self, kind: &'static str, files: u64, bytes: u64) {
        let mut landed = self.landed.lock().unwrap_or_else(|e| e.into_inner());
        let e = landed.entry(kind).or_default();
        e.0 += files;
        e.1 += bytes;
    }

    /// Counts one file that reached a final status.
    pub fn record(&self, status: FileStatus, size: u64, reason: Option<&str>) {
        match status {
            FileStatus::Copied => {
                self.files_copied.fetch_add(1, Ordering::Relaxed);
                self.bytes_copied.fetch_add(size, Ordering::Relaxed);
            }
            FileStatus::Skipped => {
                self.files_skipped.fetch_add(1, Ordering::Relaxed);
                self.bytes_skipped.fetch_add(size, Ordering::Relaxed);
            }
            FileStatus::Failed => {
                let class = reason_class(reason.unwrap_or_default());
                *self
                    .failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(class)
                    .or_default() += 1;
            }
            FileStatus::Deleted => {
                self.files_deleted.fetch_add(1, Ordering::Relaxed);
            }
            FileStatus::Pending => {}
        }
    }
}

/// Requests Bifrost made to object-store destinations, by destination kind and answer: an
/// HTTP status, or `error` when no answer came (refused, reset, timed out). Retries count.
#[derive(Debug, Default)]
pub struct DestinationRequests(Mutex<BTreeMap<(&'static str, Option<u16>), u64>>);

impl DestinationRequests {
    /// Counts one request to a `kind` destination answered with `status` (`None`: no answer).
    pub fn record(&self, kind: &'static str, status: Option<u16>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((kind, status))
            .or_default() += 1;
    }

    /// How many `kind` requests got `status` so far.
    pub fn count(&self, kind: &str, status: Option<u16>) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((k, s), _)| *k == kind && *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// The counter family in the text format.
    fn render(&self, out: &mut String) {
        family(
            out,
            "bifrost_destination_requests_total",
            "counter",
            "Requests to object-store destinations by destination kind and HTTP status (error: no answer), retries included.",
        );
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for ((kind, status), n) in counts {
            let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "bifrost_destination_requests_total{{kind=\"{kind}\",status=\"{status}\"}} {n}"
            );
        }
    }
}

/// A failure reason's class: a label with few values, whatever the message says.
pub fn reason_class(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&["vanished", "no longer exists", "not found"]) {
        "vanished"
    } else if has(&["changed during copy", "shrank"]) {
        "changed"
    } else if has(&["permission denied", "access is denied", "not permitted"]) {
        "permission"
    } else if has(&[
        "locked",
        "being used by another process",
        "sharing violation",
    ]) {
        "locked"
    } else if has(&["disk full", "disk is full", "no space", "quota"]) {
        "disk_full"
    } else if has(&["fifo", "socket", "device file"]) {
        "special_file"
    } else if has(&["checksum"]) {
        "checksum"
    } else if has(&["connection", "tunnel", "offline", "timed out"]) {
        "link"
    } else {
        "other"
    }
}

/// One job's live meter, shared by its copy tasks.
pub struct Meter {
    /// Bytes of files in flight (counted into progress, not yet done).
    pub inflight: AtomicU64,
    /// Files being copied now.
    pub active: AtomicU64,
    /// Bytes received from the agent since the job started running here.
    pub received: AtomicU64,
    /// When the job started running here.
    pub since: std::time::Instant,
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            inflight: AtomicU64::new(0),
            active: AtomicU64::new(0),
            received: AtomicU64::new(0),
            since: std::time::Instant::now(),
        }
    }
}

/// Escapes a label value for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The metrics in Prometheus's text format (0.0.4).
pub async fn render(app: &App) -> Result<String, crate::store::StoreError> {
    let mut out = String::with_capacity(4096);
    let tally = &app.store.tally;
    let live = app.registry.all();
    let authorized = live.iter().filter(|l| l.connector.is_some()).count();
    family(
        &mut out,
        "bifrost_connected_agents",
        "gauge",
        "Agents connected and authorized.",
    );
    let _ = writeln!(out, "bifrost_connected_agents {authorized}");
    family(
        &mut out,
        "bifrost_waiting_agents",
        "gauge",
        "Agents connected and waiting for authorization.",
    );
    let _ = writeln!(out, "bifrost_waiting_agents {}", live.len() - authorized);

    let meters = app.engine.meters();
    let active: u64 = meters
        .iter()
        .map(|(_, m)| m.active.load(Ordering::Relaxed))
        .sum();
    family(
        &mut out,
        "bifrost_active_transfers",
        "gauge",
        "Files being copied now.",
    );
    let _ = writeln!(out, "bifrost_active_transfers {active}");

    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, value) in [
        ("bifrost_files_copied_total", "Files copied and verified since Bifrost started.", &tally.files_copied),
        ("bifrost_copied_bytes_total", "Bytes of files copied and verified since Bifrost started.", &tally.bytes_copied),
        ("bifrost_files_skipped_total", "Files skipped (already at the destination, or not copyable by design) since Bifrost started.", &tally.files_skipped),
        ("bifrost_skipped_bytes_total", "Bytes of skipped files since Bifrost started.", &tally.bytes_skipped),
        ("bifrost_files_deleted_at_source_total", "Files re-runs found gone from the source since Bifrost started.", &tally.files_deleted),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", load(value));
    }
    family(
        &mut out,
        "bifrost_files_failed_total",
        "counter",
        "Files that failed since Bifrost started, by reason.",
    );
    let failed = tally
        .failed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (reason, n) in &failed {
        let _ = writeln!(out, "bifrost_files_failed_total{{reason=\"{reason}\"}} {n}");
    }

    let landed = tally
        .landed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (name, help, pick) in [
        ("bifrost_destination_files_total", "Files copied since Bifrost started, by destination kind (folder, s3, azure_blob, gcs).", 0),
        ("bifrost_destination_bytes_total", "Bytes of files copied since Bifrost started, by destination kind.", 1),
    ] {
        family(&mut out, name, "counter", help);
        for (kind, (files, bytes)) in &landed {
            let n = if pick == 0 { files } else { bytes };
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {n}");
        }
    }
    app.destinations.requests.render(&mut out);

    let jobs = app.store.jobs().await?;
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    for j in &jobs {
        *states.entry(j.state.as_str()).or_default() += 1;
    }
    family(&mut out, "bifrost_jobs", "gauge", "Jobs by state.");
    for (state, n) in &states {
        let _ = writeln!(out, "bifrost_jobs{{state=\"{state}\"}} {n}");
    }

    let mut files = String::new();
    let mut bytes = String::new();
    let mut rate = String::new();
    let mut received = String::new();
    for j in &jobs {
        let c = app.store.counts(j.id.clone()).await?;
        let id = label(&j.id);
        for (status, n) in [
            ("copied", c.files_done),
            ("failed", c.files_failed),
            ("skipped", c.files_skipped),
            (
                "pending",
                c.files_total - c.files_done - c.files_failed - c.files_skipped,
            ),
            ("deleted", c.files_deleted),
        ] {
            let _ = writeln!(
                files,
                "bifrost_job_files{{job=\"{id}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            bytes,
            "bifrost_job_bytes{{job=\"{id}\",kind=\"done\"}} {}",
            c.bytes_done
        );
        let _ = writeln!(
            bytes,
            "bifrost_job_bytes{{job=\"{id}\",kind=\"total\"}} {}",
            c.bytes_total
        );
        if let Some((_, m)) = meters.iter().find(|(job, _)| *job == j.id) {
            let got = load(&m.received);
            let secs = m.since.elapsed().as_secs_f64().max(0.001);
            let _ = writeln!(
                received,
                "bifrost_job_received_bytes_total{{job=\"{id}\"}} {got}"
            );
            let _ = writeln!(
                rate,
                "bifrost_job_throughput_bytes_per_second{{job=\"{id}\"}} {:.0}",
                got as f64 / secs
            );
        }
    }
    family(
        &mut out,
        "bifrost_job_files",
        "gauge",
        "A job's files by status, as in its report.",
    );
    out.push_str(&files);
    family(
        &mut out,
        "bifrost_job_bytes",
        "gauge",
        "A job's bytes done (copied or skipped) and in all.",
    );
    out.push_str(&bytes);
    family(
        &mut out,
        "bifrost_job_received_bytes_total",
        "counter",
        "Bytes a running job received from its agent since it started running here.",
    );
    out.push_str(&received);
    family(
        &mut out,
        "bifrost_job_throughput_bytes_per_second",
        "gauge",
        "A running job's average receive rate since it started running here.",
    );
    out.push_str(&rate);
    Ok(out)
}

/// `GET /metrics` (admin token or session, like the API).
pub async fn handler(State(app): State<Arc<App>>) -> Response {
    match render(&app).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the database: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fall_into_few_classes() {
        assert_eq!(
            reason_class("vanished: the file no longer exists at the source"),
            "vanished"
        );
        assert_eq!(reason_class("changed during copy"), "changed");
        assert_eq!(
            reason_class("cannot open /x: Permission denied (os error 13)"),
            "permission"
        );
        assert_eq!(reason_class("the destination disk is full"), "disk_full");
        assert_eq!(reason_class("a FIFO is not copied"), "special_file");
        assert_eq!(
            reason_class("checksum mismatch (got 1 of 2 bytes)"),
            "checksum"
        );
        assert_eq!(reason_class("something new"), "other");
    }

    #[test]
    fn tally_counts_by_status_and_reason() {
        let t = Tally::default();
        t.record(FileStatus::Copied, 10, None);
        t.record(FileStatus::Copied, 5, None);
        t.record(FileStatus::Skipped, 7, Some("already there"));
        t.record(FileStatus::Failed, 3, Some("changed during copy"));
        t.record(FileStatus::Pending, 3, None);
        assert_eq!(t.files_copied.load(Ordering::Relaxed), 2);
        assert_eq!(t.bytes_copied.load(Ordering::Relaxed), 15);
        assert_eq!(t.files_skipped.load(Ordering::Relaxed), 1);
        assert_eq!(t.failed.lock().unwrap().get("changed"), Some(&1));
    }

    #[test]
    fn destination_requests_render_by_kind_and_status() {
        let r = DestinationRequests::default();
        r.record("s3", Some(503));
        r.record("s3", Some(503));
        r.record("azure_blob", None);
        let mut out = String::new();
        r.render(&mut out);
        assert!(
            out.contains("bifrost_destination_requests_total{kind=\"s3\",status=\"503\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("{kind=\"azure_blob\",status=\"error\"} 1\n"),
            "{out}"
        );
        assert_eq!(r.count("s3", Some(503)), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
