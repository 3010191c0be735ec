//! Azure's Set Blob Metadata, signed with the account's Shared Key: object_store completes an
//! upload (Put Block List) without metadata, so a blob uploaded in blocks gets its modification
//! time and BLAKE3 in a second request.

use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
use object_store::{Attribute, Attributes};

use super::SetMetadata;
use crate::failure::CopyError;

/// The most of an error answer's body read (its `<Code>` and `<Message>` come first).
const MAX_ERROR_BODY: usize = 16 << 10;

/// Sets blob metadata in one container.
pub struct AzureMetadata {
    client: reqwest::Client,
    /// `https://ACCOUNT.blob.core.windows.net` or an emulator's `http://HOST:PORT/ACCOUNT`.
    account_url: String,
    container: String,
    account: String,
    credential: AzureCredential,
}

impl std::fmt::Debug for AzureMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureMetadata")
            .field("account_url", &self.account_url)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl AzureMetadata {
    /// For `container` of `account` at `account_url`, signed with `access_key` (base64).
    pub fn new(
        account_url: &str,
        account: &str,
        container: &str,
        access_key: &str,
    ) -> Result<Self, String> {
        let key = AzureAccessKey::try_new(access_key).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            account_url: account_url.trim_end_matches('/').to_owned(),
            container: container.to_owned(),
            account: account.to_owned(),
            credential: AzureCredential::AccessKey(key),
        })
    }

    async fn send(&self, key: &str, attributes: &Attributes) -> Result<(), CopyError> {
        let fail = |status: Option<u16>, message: String| CopyError::Service {
            status,
            message: format!("set metadata: {message}"),
            transient: status.is_none_or(|s| s >= 500 || s == 429 || s == 408),
        };
        let url = format!(
            "{}/{}/{}?comp=metadata",
            self.account_url,
            self.container,
            encode(key)
        );
        let mut request = http::Request::builder().method("PUT").uri(&url);
        for (name, value) in attributes {
            if let Attribute::Metadata(name) = name {
                request = request.header(format!("x-ms-meta-{name}"), value.as_ref());
            }
        }
        let mut request = request
            .body(object_store::client::HttpRequestBody::from(Vec::new()))
            .map_err(|e| fail(None, e.to_string()))?;
        AzureAuthorizer::new(&self.credential, &self.account)
            .try_authorize(&mut request)
            .map_err(|e| fail(None, e.to_string()))?;
        let mut out = self.client.put(&url).header("content-length", "0");
        for (name, value) in request.headers() {
            out = out.header(name, value);
        }
        let answer = out.send().await.map_err(|e| fail(None, e.to_string()))?;
        let status = answer.status().as_u16();
        if answer.status().is_success() {
            return Ok(());
        }
        // An error body is read only so far: the service's code and message come first.
        let mut answer = answer;
        let mut raw = Vec::new();
        while let Ok(Some(chunk)) = answer.chunk().await {
            raw.extend_from_slice(&chunk);
            if raw.len() >= MAX_ERROR_BODY {
                raw.truncate(MAX_ERROR_BODY);
                break;
            }
        }
        let body = String::from_utf8_lossy(&raw).into_owned();
        let code = between(&body, "Code").unwrap_or("");
        let message = between(&body, "Message").unwrap_or(&body);
        Err(fail(Some(status), format!("{status} {code}: {message}")))
    }
}

impl SetMetadata for AzureMetadata {
    fn set<'a>(
        &'a self,
        key: &'a str,
        attributes: Attributes,
    ) -> futures_util::future::BoxFuture<'a, Result<(), CopyError>> {
        Box::pin(async move { self.send(key, &attributes).await })
    }
}

/// A key for a URL path: `/` kept, all but unreserved characters percent-encoded.
fn encode(key: &str) -> String {
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

fn between<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find(&format!("</{tag}>"))? + start;
    Some(&s[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_for_the_path() {
        assert_eq!(encode("a b/ü%25.txt"), "a%20b/%C3%BC%2525.txt");
    }
}
