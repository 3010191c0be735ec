//! `/metrics` in Prometheus's text format (0.0.4): the counters, the live meters and the jobs'
//! counts, each family with its help line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::DestinationRequests;
use crate::App;

/// Escapes a label value for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A family's help and type lines, which Prometheus wants before its samples.
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
        "Files that failed since Bifrost started, by the kind of failure (vanished, permission, locked, special_file, refused, changed, limit, checksum, link, disk_full, outside, destination, service, internal).",
    );
    let failed = tally
        .failed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (kind, n) in &failed {
        let _ = writeln!(out, "bifrost_files_failed_total{{reason=\"{kind}\"}} {n}");
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
    requests(&app.destinations.requests, &mut out);

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

/// The destination request counters in the text format.
fn requests(requests: &DestinationRequests, out: &mut String) {
    family(
        out,
        "bifrost_destination_requests_total",
        "counter",
        "Requests to object-store destinations by destination kind and HTTP status (error: no answer), retries included.",
    );
    let counts = requests.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for ((kind, status), n) in counts {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        let _ = writeln!(
            out,
            "bifrost_destination_requests_total{{kind=\"{kind}\",status=\"{status}\"}} {n}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_requests_render_by_kind_and_status() {
        let r = DestinationRequests::default();
        r.record("s3", Some(503));
        r.record("s3", Some(503));
        r.record("azure_blob", None);
        let mut out = String::new();
        requests(&r, &mut out);
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
