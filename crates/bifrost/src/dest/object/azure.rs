//! Azure requests object_store cannot make: Put Blob and Put Block with `Content-MD5`, which
//! the service checks against what arrives (object_store sends no checksum to Azure), and Set
//! Blob Metadata (object_store completes an upload, Put Block List, without metadata, so a blob
//! uploaded in blocks gets its modification time and BLAKE3 in a second request). Signed with
//! the account's Shared Key.

use base64::Engine as _;
use bytes::Bytes;
use md5::Digest as _;
use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
use object_store::multipart::PartId;
use object_store::{Attributes, PutPayload};

use super::signed::{self, Sender, SetMetadata};
use crate::failure::CopyError;

/// Writes and sets metadata on blobs in one container.
pub struct AzureBlobs {
    sender: Sender,
    /// `https://ACCOUNT.blob.core.windows.net` or an emulator's `http://HOST:PORT/ACCOUNT`.
    account_url: String,
    container: String,
    account: String,
    credential: AzureCredential,
}

impl std::fmt::Debug for AzureBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureBlobs")
            .field("account_url", &self.account_url)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl AzureBlobs {
    /// For `container` of `account` at `account_url`, signed with `access_key` (base64).
    pub fn new(
        sender: Sender,
        account_url: &str,
        (account, container): (&str, &str),
        access_key: &str,
    ) -> Result<Self, String> {
        let key = AzureAccessKey::try_new(access_key).map_err(|e| e.to_string())?;
        Ok(Self {
            sender,
            account_url: account_url.trim_end_matches('/').to_owned(),
            container: container.to_owned(),
            account: account.to_owned(),
            credential: AzureCredential::AccessKey(key),
        })
    }

    fn url(&self, key: &str, query: &str) -> String {
        let (account, container) = (&self.account_url, &self.container);
        format!("{account}/{container}/{}{query}", signed::encode(key))
    }

    /// Signs and sends a PUT of `body` to `url` with `headers`.
    async fn put<'a>(
        &self,
        step: &str,
        url: &str,
        headers: impl IntoIterator<Item = (String, &'a str)>,
        body: Bytes,
    ) -> Result<(), CopyError> {
        let mut request = signed::request("PUT", url, headers, body)?;
        AzureAuthorizer::new(&self.credential, &self.account)
            .try_authorize(&mut request)
            .map_err(|e| signed::failure(step, None, e.to_string()))?;
        self.sender.send(step, request).await.map(drop)
    }

    /// Puts `payload` whole as the blob at `key` with `attributes`, its MD5 checked by Azure.
    pub async fn put_blob(
        &self,
        key: &str,
        payload: PutPayload,
        attributes: &Attributes,
    ) -> Result<(), CopyError> {
        let body = one(payload);
        let (md5, length) = (md5_of(&body), body.len().to_string());
        let fixed = [
            ("x-ms-blob-type".to_owned(), "BlockBlob"),
            ("content-md5".to_owned(), md5.as_str()),
            ("content-length".to_owned(), length.as_str()),
        ];
        let meta = signed::metadata(attributes).map(|(n, v)| (format!("x-ms-meta-{n}"), v));
        let url = self.url(key, "");
        self.put("put", &url, fixed.into_iter().chain(meta), body)
            .await
    }

    /// Puts part `idx` of upload `upload` of the blob at `key` as an uncommitted block, its MD5
    /// checked by Azure. Block ids are unique to the upload and the part: a part sent again
    /// replaces its block.
    pub async fn put_block(
        &self,
        key: &str,
        (upload, idx): (i64, usize),
        payload: PutPayload,
    ) -> Result<PartId, CopyError> {
        let content_id = format!("{upload:016x}{idx:016x}");
        let block = base64::engine::general_purpose::STANDARD.encode(&content_id);
        let query = format!("?comp=block&blockid={}", signed::encode(&block));
        let body = one(payload);
        let (md5, length) = (md5_of(&body), body.len().to_string());
        let fixed = [
            ("content-md5".to_owned(), md5.as_str()),
            ("content-length".to_owned(), length.as_str()),
        ];
        self.put("put part", &self.url(key, &query), fixed, body)
            .await?;
        Ok(PartId { content_id })
    }

    async fn set_metadata(&self, key: &str, attributes: &Attributes) -> Result<(), CopyError> {
        let headers = signed::metadata(attributes).map(|(n, v)| (format!("x-ms-meta-{n}"), v));
        let url = self.url(key, "?comp=metadata");
        self.put("set metadata", &url, headers, Bytes::new()).await
    }
}

/// The payload in one buffer (the service needs its length and MD5 before it is sent).
fn one(payload: PutPayload) -> Bytes {
    let mut chunks: Vec<Bytes> = payload.into_iter().collect();
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    chunks.concat().into()
}

fn md5_of(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

impl SetMetadata for AzureBlobs {
    fn set<'a>(
        &'a self,
        key: &'a str,
        _size: u64,
        attributes: Attributes,
    ) -> futures_util::future::BoxFuture<'a, Result<(), CopyError>> {
        Box::pin(async move { self.set_metadata(key, &attributes).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_of_many_chunks_is_one_buffer_with_its_md5() {
        let p = PutPayload::from_iter([Bytes::from_static(b"ab"), Bytes::from_static(b"c")]);
        let body = one(p);
        assert_eq!(&body[..], b"abc");
        // RFC 1321's test vector: MD5("abc").
        assert_eq!(md5_of(&body), "kAFQmDzST7DWlj99KOF/cg==");
        assert!(one(PutPayload::default()).is_empty());
    }
}
