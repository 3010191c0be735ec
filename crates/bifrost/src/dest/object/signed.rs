//! Requests object_store has no call for (Azure's Put Blob and Put Block with Content-MD5 and
//! Set Blob Metadata, S3's copy onto itself to set metadata): signed requests sent with a
//! bounded answer, counted like object_store's own requests.

use std::sync::Arc;

use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::Attributes;

use crate::failure::CopyError;
use crate::metrics::DestinationRequests;

/// The most of an answer's body read (an error's `<Code>` and `<Message>` come first).
const MAX_BODY: usize = 16 << 10;

/// Sets metadata on an existing object.
pub trait SetMetadata: Send + Sync {
    /// Sets `attributes` on the `size`-byte object at `key`.
    fn set<'a>(
        &'a self,
        key: &'a str,
        size: u64,
        attributes: Attributes,
    ) -> futures_util::future::BoxFuture<'a, Result<(), CopyError>>;
}

/// Sends signed requests to one destination.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    kind: &'static str,
    requests: Arc<DestinationRequests>,
}

impl Sender {
    /// A sender whose requests count under `kind` in `requests`.
    pub fn new(kind: &'static str, requests: Arc<DestinationRequests>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            kind,
            requests,
        })
    }

    /// Sends `request` (already signed) for `step`; its answer's body, read up to 16 KiB.
    /// A status other than 2xx fails with the service's code and message.
    pub async fn send(&self, step: &str, request: HttpRequest) -> Result<String, CopyError> {
        let (parts, body) = request.into_parts();
        let out_has_length = parts.headers.contains_key(http::header::CONTENT_LENGTH);
        let mut out = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.as_bytes().cloned().unwrap_or_default());
        if body.is_empty() && !out_has_length {
            out = out.header("content-length", "0");
        }
        let answer = match out.send().await {
            Ok(a) => a,
            Err(e) => {
                self.requests.record(self.kind, None);
                return Err(failure(step, None, e.to_string()));
            }
        };
        let status = answer.status().as_u16();
        self.requests.record(self.kind, Some(status));
        let body = read_bounded(answer).await;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        if status == 400 && super::service::damaged(&body) {
            return Err(CopyError::Checksum(format!(
                "{step}: {}",
                said(status, &body)
            )));
        }
        Err(failure(step, Some(status), said(status, &body)))
    }
}

async fn read_bounded(mut answer: reqwest::Response) -> String {
    let mut raw = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        raw.extend_from_slice(&chunk);
        if raw.len() >= MAX_BODY {
            raw.truncate(MAX_BODY);
            break;
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// `STATUS CODE: MESSAGE` from an error answer's XML, or its text.
pub fn said(status: u16, body: &str) -> String {
    let code = element(body, "Code").unwrap_or("");
    let message = element(body, "Message").unwrap_or(body);
    format!("{status} {code}: {message}")
}

/// `step` failed with `status` (`None`: no answer): worth another attempt for a 5xx, 408, 429
/// or no answer.
pub fn failure(step: &str, status: Option<u16>, message: String) -> CopyError {
    CopyError::Service {
        status,
        message: format!("{step}: {message}"),
        transient: status.is_none_or(|s| s >= 500 || s == 429 || s == 408),
    }
}

/// A request for `url` with `headers` and `body`, to be signed.
pub fn request<'a>(
    method: &str,
    url: &str,
    headers: impl IntoIterator<Item = (String, &'a str)>,
    body: bytes::Bytes,
) -> Result<HttpRequest, CopyError> {
    let mut r = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        r = r.header(name, value);
    }
    r.body(HttpRequestBody::from(body))
        .map_err(|e| failure("sign", None, e.to_string()))
}

/// The metadata among `attributes`, as `(name, value)`.
pub fn metadata(attributes: &Attributes) -> impl Iterator<Item = (&str, &str)> {
    attributes.iter().filter_map(|(name, value)| match name {
        object_store::Attribute::Metadata(n) => Some((n.as_ref(), value.as_ref())),
        _ => None,
    })
}

/// A key for a URL path: `/` kept, all but unreserved characters percent-encoded.
pub fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len() * 2);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text between `<tag>` and `</tag>` in `s`.
pub fn element<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find(&format!("</{tag}>"))? + start;
    Some(s[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_for_the_path() {
        assert_eq!(encode("a b/ü%25.txt"), "a%20b/%C3%BC%2525.txt");
    }

    #[test]
    fn an_error_answer_gives_its_code_and_message() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        assert_eq!(said(403, body), "403 AccessDenied: Access Denied");
        let e = failure("set metadata", Some(503), said(503, "busy"));
        assert_eq!(e.to_string(), "set metadata: 503 : busy");
        assert_eq!(e.then(), crate::failure::Then::Retry);
        assert_eq!(
            failure("x", Some(403), String::new()).then(),
            crate::failure::Then::Fail
        );
    }
}
