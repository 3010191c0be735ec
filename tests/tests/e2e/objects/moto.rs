//! A moto S3 server of a test's own, and what the tests ask of it directly.

use std::process::{Child, Command};

use serde_json::Value;

use super::{send, spawn_listening, tool, verify};
use crate::support::{kill_group, Lines};

/// A moto S3 server of its own (in memory; any access key is accepted, none is checked).
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`: the S3 endpoint (path-style addressing).
    pub endpoint: String,
    /// Its stdout and stderr (one access-log line per request).
    pub output: Lines,
}

impl Moto {
    /// Access key id to configure clients with (moto does not check it).
    pub const ACCESS_KEY: &'static str = "testing";
    /// Secret access key to configure clients with.
    pub const SECRET_KEY: &'static str = "testing";
    /// The region clients sign for.
    pub const REGION: &'static str = "us-east-1";

    /// Starts `moto_server` on a port the kernel picks and waits until it answers.
    pub fn start() -> Self {
        let mut cmd = Command::new(tool("venv/bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", "0"]);
        let (child, endpoint, output) = spawn_listening(cmd, "moto_server", "Running on http://");
        Self {
            child,
            endpoint,
            output,
        }
    }

    /// Creates `bucket` (an unsigned path-style PUT, which moto accepts).
    pub fn create_bucket(&self, bucket: &str) {
        let req = ureq::http::Request::put(format!("{}/{bucket}", self.endpoint))
            .body(Vec::new())
            .expect("request");
        let (status, body) = send(req);
        assert_eq!(
            status,
            200,
            "create bucket {bucket}: {body}\n{:#?}",
            self.output.all()
        );
    }

    /// Stores `body` at `key` with `x-amz-meta-*` `metadata` (an unsigned PUT): for planting
    /// objects a test then expects to find, overwrite or skip.
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8], metadata: &[(&str, &str)]) {
        let mut req = ureq::http::Request::put(format!("{}/{bucket}/{key}", self.endpoint))
            .header("Content-Type", "application/octet-stream");
        for (k, v) in metadata {
            req = req.header(format!("x-amz-meta-{k}"), *v);
        }
        let (status, text) = send(req.body(body.to_vec()).expect("request"));
        assert_eq!(status, 200, "put {bucket}/{key}: {text}");
    }

    /// Every object under `prefix` read back by boto3: `{"objects": {KEY: {"size", "sha256",
    /// "metadata"}}, "count": N, ...}`. S3 lowercases metadata keys.
    pub fn verify(&self, bucket: &str, prefix: &str) -> Value {
        verify(&[
            "--kind",
            "s3",
            "--endpoint",
            &self.endpoint,
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--access-key",
            Self::ACCESS_KEY,
            "--secret-key",
            Self::SECRET_KEY,
            "--region",
            Self::REGION,
        ])
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
