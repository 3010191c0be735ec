//! Resume at the byte: a 256 MiB file survives Bifrost killed, the agent killed and the link cut
//! at 25 %, 50 % and 75 %, and the agent sends less than 1.3× the file in all.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::support::{noise, wait_for, Agent, Bifrost, Forwarder, TestCa};

const SIZE: usize = 256 * 1024 * 1024;
/// Slow enough that each interruption lands mid-file (about 5 s for the whole file).
const LIMIT: u64 = 48 * 1024 * 1024;

struct Rig {
    dir: tempfile::TempDir,
    ca: TestCa,
    bifrost: Bifrost,
    link: Forwarder,
    agent: Agent,
    share: PathBuf,
    dest: PathBuf,
    job: String,
    data: Vec<u8>,
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path());
        let bifrost = Bifrost::start(dir.path(), &ca);
        let link = Forwarder::new(&bifrost.addr);
        let share = dir.path().join("share");
        std::fs::create_dir_all(share.join("big")).unwrap();
        let data = noise(SIZE, 7);
        std::fs::write(share.join("big/huge.bin"), &data).unwrap();
        let home = dir.path().join("home");
        let agent = start_agent(&home, &link, &ca, &share);
        let connector = bifrost.authorize(&agent.key(), "fs1")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        agent.wait_status("authorized as fs1", Duration::from_secs(10));
        let dest = dir.path().join("dest");
        let (status, job) = bifrost.api(
            "POST",
            "/api/v1/jobs",
            Some(json!({
                "connector": connector,
                "sources": [share.join("big")],
                "destination": {"kind": "folder", "path": dest},
                "concurrency": 1,
                "bandwidth_limit": LIMIT,
            })),
        );
        assert_eq!(status, 201, "{job}");
        assert_eq!(job["bandwidth_limit"], LIMIT);
        let job = job["id"].as_str().unwrap().to_owned();
        Self {
            dir,
            ca,
            bifrost,
            link,
            agent,
            share,
            dest,
            job,
            data,
        }
    }

    /// Bytes of the file Bifrost holds so far.
    fn reached(&self) -> u64 {
        std::fs::metadata(self.dest.join("big/.huge.bin.mover-part"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Interrupts the copy at 25 %, 50 % and 75 %, then checks the file and the bytes sent.
    fn run(mut self, mut interrupt: impl FnMut(&mut Rig)) {
        for quarter in 1..=3u64 {
            let mark = SIZE as u64 * quarter / 4;
            let at = wait_for(
                Duration::from_secs(60),
                "the copy to reach the mark",
                || {
                    let r = self.reached();
                    (r >= mark).then_some(r)
                },
            );
            assert!(
                at < mark + SIZE as u64 / 8,
                "the copy ran past {quarter}/4 before the interruption: {at}"
            );
            interrupt(&mut self);
        }
        let done = self.bifrost.wait_job(&self.job, Duration::from_secs(120));
        assert_eq!(done["state"], "completed", "{done}");
        let copied = std::fs::read(self.dest.join("big/huge.bin")).unwrap();
        assert!(copied == self.data, "the resumed file differs");
        assert_eq!(
            self.bifrost.files(&self.job)[0]["blake3"],
            blake3::hash(&self.data).to_hex().as_str()
        );
        let sent = self.link.bytes_up();
        let ratio = sent as f64 / SIZE as f64;
        eprintln!("the agent sent {sent} bytes for a {SIZE}-byte file ({ratio:.3}×)");
        assert!(ratio < 1.3, "the agent sent {ratio:.3}× the file");
        // Every resumed read started past zero.
        let starts: Vec<String> = self
            .agent
            .logs()
            .lines()
            .filter(|l| l.contains("huge.bin") && l.contains(" read"))
            .map(str::to_owned)
            .collect();
        assert!(starts.len() >= 4, "{starts:#?}");
        assert!(
            starts.iter().skip(1).all(|l| !l.contains("start=0 ")),
            "{starts:#?}"
        );
    }
}

fn start_agent(
    home: &std::path::Path,
    link: &Forwarder,
    ca: &TestCa,
    share: &std::path::Path,
) -> Agent {
    let relay = format!("https://127.0.0.1:{}", link.port);
    Agent::start(
        home,
        &[
            "--relay",
            &relay,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
            "--share",
            share.to_str().unwrap(),
        ],
    )
}

#[test]
fn bifrost_killed_three_times_mid_file() {
    Rig::new().run(|rig| {
        rig.bifrost.restart(&rig.ca);
        rig.agent
            .wait_status("authorized as fs1", Duration::from_secs(30));
    });
}

#[test]
fn agent_killed_three_times_mid_file() {
    Rig::new().run(|rig| {
        rig.agent.kill();
        let home = rig.dir.path().join("home");
        rig.agent = start_agent(&home, &rig.link, &rig.ca, &rig.share);
        rig.agent
            .wait_status("authorized as fs1", Duration::from_secs(30));
    });
}

#[test]
fn link_cut_three_times_mid_file() {
    Rig::new().run(|rig| {
        rig.link.cut();
        rig.agent
            .wait_status("authorized as fs1", Duration::from_secs(30));
    });
}
