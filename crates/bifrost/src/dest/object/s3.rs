//! S3 has no call that changes an object's metadata: a multipart upload is begun with the
//! modification time, and once complete the object is copied onto itself with its BLAKE3
//! added (`x-amz-metadata-directive: REPLACE`), a copy inside the service that also gives the
//! object a SHA-256 of its whole content.

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::Attributes;

use super::signed::{self, Sender, SetMetadata};
use crate::failure::CopyError;

/// The largest object S3 copies in one request: a bigger one keeps the metadata its upload
/// began with (the modification time), and its BLAKE3 is only in Bifrost's report.
pub const MAX_COPY: u64 = 5 << 30;

/// Sets object metadata in one bucket.
pub struct S3Metadata {
    sender: Sender,
    /// Where the bucket's objects are: `https://BUCKET.s3.REGION.amazonaws.com`,
    /// `ENDPOINT/BUCKET`, … (as object_store's builder makes it).
    bucket_url: String,
    bucket: String,
    region: String,
    credential: AwsCredential,
}

impl std::fmt::Debug for S3Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Metadata")
            .field("bucket_url", &self.bucket_url)
            .finish_non_exhaustive()
    }
}

/// Where `bucket`'s objects are, the way object_store's builder finds it.
pub fn bucket_url(bucket: &str, region: &str, endpoint: Option<&str>, path_style: bool) -> String {
    match (endpoint, path_style) {
        (Some(e), false) => e.trim_end_matches('/').to_owned(),
        (Some(e), true) => format!("{}/{bucket}", e.trim_end_matches('/')),
        (None, false) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, true) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
    }
}

impl S3Metadata {
    /// For `bucket` at `bucket_url` in `region`, signed with the access key.
    pub fn new(
        sender: Sender,
        (bucket_url, bucket, region): (String, &str, &str),
        (key_id, secret): (&str, &str),
    ) -> Self {
        Self {
            sender,
            bucket_url,
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            credential: AwsCredential {
                key_id: key_id.to_owned(),
                secret_key: secret.to_owned(),
                token: None,
            },
        }
    }

    async fn send(&self, key: &str, attributes: &Attributes) -> Result<(), CopyError> {
        const STEP: &str = "set metadata";
        let encoded = signed::encode(key);
        let url = format!("{}/{encoded}", self.bucket_url);
        let source = format!("{}/{encoded}", self.bucket);
        let fixed = [
            ("x-amz-copy-source".to_owned(), source.as_str()),
            ("x-amz-metadata-directive".to_owned(), "REPLACE"),
            // The copy gets a SHA-256 of the whole object, where the upload had one per part.
            ("x-amz-checksum-algorithm".to_owned(), "SHA256"),
        ];
        let meta = signed::metadata(attributes).map(|(n, v)| (format!("x-amz-meta-{n}"), v));
        let headers = fixed.into_iter().chain(meta);
        let mut request = signed::request("PUT", &url, headers, bytes::Bytes::new())?;
        AwsAuthorizer::new(&self.credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| signed::failure(STEP, None, e.to_string()))?;
        let body = self.sender.send(STEP, request).await?;
        // A copy can fail after its 200 has been sent: the body then holds the error.
        if body.contains("<Error>") {
            return Err(signed::failure(STEP, Some(500), signed::said(500, &body)));
        }
        Ok(())
    }
}

impl SetMetadata for S3Metadata {
    fn set<'a>(
        &'a self,
        key: &'a str,
        size: u64,
        attributes: Attributes,
    ) -> futures_util::future::BoxFuture<'a, Result<(), CopyError>> {
        Box::pin(async move {
            if size > MAX_COPY {
                return Ok(());
            }
            self.send(key, &attributes).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls_follow_object_stores_builder() {
        let e = Some("http://127.0.0.1:9000/");
        assert_eq!(bucket_url("b", "r", e, true), "http://127.0.0.1:9000/b");
        assert_eq!(bucket_url("b", "r", e, false), "http://127.0.0.1:9000");
        assert_eq!(
            bucket_url("b", "eu-west-1", None, false),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            bucket_url("b", "eu-west-1", None, true),
            "https://s3.eu-west-1.amazonaws.com/b"
        );
    }
}
