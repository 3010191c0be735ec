//! An Azurite Blob service of a test's own, and its Shared Key requests.

use std::process::{Child, Command};

use base64::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{send, spawn_listening, tool, verify};
use crate::support::{kill_group, Lines};

/// An Azurite Blob service of its own, keeping its data in a temp folder.
pub struct Azurite {
    child: Child,
    _data: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`; blobs live under `/devstoreaccount1/CONTAINER/NAME`.
    pub endpoint: String,
    /// Its stdout and stderr.
    pub output: Lines,
}

impl Azurite {
    /// Azurite's built-in development account.
    pub const ACCOUNT: &'static str = "devstoreaccount1";
    /// That account's key, as Microsoft publishes it (not a secret).
    pub const KEY: &'static str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// Starts `azurite-blob` on a port the kernel picks and waits until it answers.
    pub fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(tool("node/node_modules/.bin/azurite-blob"));
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--location"])
            .arg(data.path())
            // Tests never reach the internet; Azurite's telemetry would try.
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--loose"]);
        let (child, endpoint, output) = spawn_listening(cmd, "azurite-blob", "listens on http://");
        Self {
            child,
            _data: data,
            endpoint,
            output,
        }
    }

    /// The account URL that clients take as their endpoint (`http://127.0.0.1:PORT/ACCOUNT`).
    pub fn account_url(&self) -> String {
        format!("{}/{}", self.endpoint, Self::ACCOUNT)
    }

    /// Creates `container` (names: 3-63 lowercase letters, digits and dashes).
    pub fn create_container(&self, container: &str) {
        let (status, body) = self.request("PUT", container, &[("restype", "container")], &[], &[]);
        assert_eq!(
            status,
            201,
            "create container {container}: {body}\n{:#?}",
            self.output.all()
        );
    }

    /// Stores `body` as block blob `container/name` with `x-ms-meta-*` `metadata`.
    pub fn put_blob(&self, container: &str, name: &str, body: &[u8], metadata: &[(&str, &str)]) {
        let mut headers = vec![("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())];
        headers.extend(
            metadata
                .iter()
                .map(|(k, v)| (format!("x-ms-meta-{k}"), v.to_string())),
        );
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let path = format!("{container}/{name}");
        let (status, text) = self.request("PUT", &path, &[], &headers, body);
        assert_eq!(status, 201, "put blob {path}: {text}");
    }

    /// A request signed with the account key (Shared Key): `path` is `CONTAINER[/NAME]`,
    /// `query` unencoded pairs, `headers` extra headers. Returns the status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let path = format!("/{}/{path}", Self::ACCOUNT);
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .expect("format date");
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        headers.push(("x-ms-date".into(), date));
        headers.push(("x-ms-version".into(), "2021-08-06".into()));
        let auth = shared_key(method, &path, query, &headers, body.len());
        let mut url = format!("{}{path}", self.endpoint);
        for (i, (k, v)) in query.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            url.push_str(&format!("{sep}{}={}", form_encode(k), form_encode(v)));
        }
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", auth);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        send(req.body(body.to_vec()).expect("request"))
    }

    /// Every blob under `prefix` read back by azure-storage-blob (see `Moto::verify`).
    pub fn verify(&self, container: &str, prefix: &str) -> Value {
        verify(&[
            "--kind",
            "azure_blob",
            "--endpoint",
            &self.account_url(),
            "--container",
            container,
            "--prefix",
            prefix,
            "--account",
            Self::ACCOUNT,
            "--key",
            Self::KEY,
        ])
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The `Authorization` value of a Shared Key request (path-style, as Azurite addresses
/// accounts): HMAC-SHA256 over the verb, the standard headers, the `x-ms-*` headers and the
/// resource, per "Authorize with Shared Key" (version 2015-02-21 and later).
fn shared_key(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(String, String)],
    len: usize,
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let length = if len == 0 {
        String::new()
    } else {
        len.to_string()
    };
    let mut text = format!("{method}\n");
    for name in ["content-encoding", "content-language"] {
        text.push_str(&format!("{}\n", header(name)));
    }
    text.push_str(&format!("{length}\n"));
    for name in [
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "range",
    ] {
        text.push_str(&format!("{}\n", header(name)));
    }
    let mut ms: Vec<&(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .collect();
    ms.sort();
    for (k, v) in ms {
        text.push_str(&format!("{k}:{v}\n"));
    }
    text.push_str(&format!("/{}{path}", Azurite::ACCOUNT));
    let mut query: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    query.sort();
    for (k, v) in query {
        text.push_str(&format!("\n{k}:{v}"));
    }
    let key = BASE64_STANDARD.decode(Azurite::KEY).expect("base64 key");
    let signature = BASE64_STANDARD.encode(hmac_sha256(&key, text.as_bytes()));
    format!("SharedKey {}:{signature}", Azurite::ACCOUNT)
}

/// HMAC-SHA256 (RFC 2104) over `sha2`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn hmac_matches_rfc_4231_case_2() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
