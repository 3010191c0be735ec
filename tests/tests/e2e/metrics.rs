//! `/metrics`: Prometheus text that parses, behind the admin token, with counters that match the
//! job report.

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value as Metric};

use crate::support::{noise, World};

fn value(s: &Sample) -> f64 {
    match s.value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => v,
        _ => panic!("{} is not a number", s.metric),
    }
}

fn find(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(value)
}

fn scrape(w: &World) -> Scrape {
    let (status, body) = w.bifrost.api("GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().expect("metrics are text").to_owned();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
}

#[test]
fn metrics_parse_and_match_the_job_report() {
    let w = World::new();
    let src = w.share.join("m");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let mut bytes = 0;
    for i in 0..12usize {
        let size = 1000 * i * i;
        bytes += size as u64;
        std::fs::write(src.join(format!("sub/f{i}.bin")), noise(size, i as u64)).unwrap();
    }
    // A FIFO is reported, never opened.
    assert!(std::process::Command::new("mkfifo")
        .arg(src.join("pipe"))
        .status()
        .unwrap()
        .success());

    let (status, _) = w.bifrost.request("GET", "/metrics", None, None);
    assert_eq!(status, 401, "metrics need the admin token");
    let (status, _) = w.bifrost.request("GET", "/metrics", None, Some("wrong"));
    assert_eq!(status, 401);

    let before = scrape(&w);
    assert_eq!(find(&before, "bifrost_connected_agents", &[]), Some(1.0));
    assert_eq!(find(&before, "bifrost_files_copied_total", &[]), Some(0.0));

    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[src.to_str().unwrap()], &dest, None);
    let done = w.bifrost.wait_job(&job, Duration::from_secs(60));
    let report = w.bifrost.files(&job);
    let count = |status: &str| report.iter().filter(|f| f["status"] == status).count() as f64;
    let size_of = |status: &str| {
        report
            .iter()
            .filter(|f| f["status"] == status)
            .map(|f| f["size"].as_u64().unwrap())
            .sum::<u64>() as f64
    };
    assert!(count("copied") >= 12.0, "{report:#?}");
    assert_eq!(size_of("copied"), bytes as f64);
    assert_eq!(
        count("failed") + count("skipped"),
        1.0,
        "the FIFO is reported: {report:#?}"
    );

    let after = scrape(&w);
    let m = |name: &str| find(&after, name, &[]).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(m("bifrost_files_copied_total"), count("copied"));
    assert_eq!(m("bifrost_copied_bytes_total"), size_of("copied"));
    assert_eq!(m("bifrost_files_skipped_total"), count("skipped"));
    let failed: f64 = after
        .samples
        .iter()
        .filter(|s| s.metric == "bifrost_files_failed_total")
        .map(value)
        .sum();
    assert_eq!(failed, count("failed"));
    // Each failed file is counted under the kind its report line carries.
    for f in report.iter().filter(|f| f["status"] == "failed") {
        let kind = f["kind"].as_str().unwrap_or_else(|| panic!("no kind: {f}"));
        let n = report
            .iter()
            .filter(|g| g["status"] == "failed" && g["kind"] == kind)
            .count() as f64;
        assert_eq!(
            find(&after, "bifrost_files_failed_total", &[("reason", kind)]),
            Some(n),
            "{f}"
        );
    }
    assert_eq!(failed, done["files_failed"].as_f64().unwrap());
    for (status, field) in [
        ("copied", "files_done"),
        ("failed", "files_failed"),
        ("skipped", "files_skipped"),
    ] {
        assert_eq!(
            find(
                &after,
                "bifrost_job_files",
                &[("job", &job), ("status", status)]
            ),
            done[field].as_f64(),
            "{status}"
        );
    }
    assert_eq!(
        find(
            &after,
            "bifrost_job_bytes",
            &[("job", &job), ("kind", "done")]
        ),
        done["bytes_done"].as_f64()
    );
    let state = done["state"].as_str().unwrap();
    assert_eq!(find(&after, "bifrost_jobs", &[("state", state)]), Some(1.0));
    assert_eq!(m("bifrost_active_transfers"), 0.0);
    assert_eq!(m("bifrost_connected_agents"), 1.0);
}
