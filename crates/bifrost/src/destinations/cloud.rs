//! Opening a stored destination as object_store clients: the builders that work against AWS,
//! S3-compatible services, Azure and GCS (docs/OBJECT-STORE-NOTES.md), with timeouts and
//! retries chosen by [`Patience`] and every request counted by [`Counted`].

use std::sync::Arc;
use std::time::Duration;

use mover_proto::destinations::DestinationKind;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::list::PaginatedListStore;
use object_store::multipart::MultipartStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::counted::Counted;
use super::model::{Credentials, Place, Stored};
use super::{scrub, DestinationError};
use crate::dest::object::azure::AzureBlobs;
use crate::dest::object::s3::{self, S3Metadata};
use crate::dest::object::signed::Sender;
use crate::metrics::DestinationRequests;
use crate::App;

/// A destination's kind: `as_str()` gives `s3`, `azure_blob` or `gcs`.
pub type Kind = DestinationKind;

/// How long a client waits and how often it retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Test and browse: an admin is waiting. At most one retry, 10 s per request.
    Interactive,
    /// Copies: four retries within 60 s, 5 minutes per request (a 1 GiB part must fit).
    Transfer,
}

impl Patience {
    fn retry(self) -> RetryConfig {
        let (max_retries, retry_timeout) = match self {
            Patience::Interactive => (1, Duration::from_secs(10)),
            Patience::Transfer => (4, Duration::from_secs(60)),
        };
        RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries,
            retry_timeout,
        }
    }

    /// Client options; `allow_http` for an `http://` endpoint. (Passing options replaces
    /// earlier ones, `allow_http` included, so it is set here.)
    fn options(self, allow_http: bool) -> ClientOptions {
        let (timeout, connect) = match self {
            Patience::Interactive => (Duration::from_secs(10), Duration::from_secs(5)),
            Patience::Transfer => (Duration::from_secs(300), Duration::from_secs(10)),
        };
        ClientOptions::new()
            .with_allow_http(allow_http)
            .with_timeout(timeout)
            .with_connect_timeout(connect)
    }
}

/// An opened destination: one client seen through the three traits the engine needs.
#[derive(Clone)]
pub struct Bucket {
    /// The destination's id.
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// Whole-object operations.
    pub store: Arc<dyn ObjectStore>,
    /// Multipart uploads that survive a restart (upload id and part ids as strings).
    pub multipart: Arc<dyn MultipartStore>,
    /// One page of a listing (`max_keys`, delimiter).
    pub list: Arc<dyn PaginatedListStore>,
    /// The destination's key prefix: "" or `a/b` (no leading or trailing `/`).
    pub prefix: String,
    /// Sets an object's metadata after a multipart upload (S3, Azure).
    pub metadata: Option<Arc<dyn crate::dest::object::SetMetadata>>,
    /// Azure's writes with Content-MD5.
    pub blobs: Option<Arc<AzureBlobs>>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// The object path of `rel` (a `/`-separated path inside the destination) under the
    /// prefix, byte for byte (`Path::parse`: `Path::from` would percent-encode `~`, `%`, `#`
    /// and more). Empty, `.` and `..` segments and control characters are refused.
    pub fn key(&self, rel: &str) -> Result<object_store::path::Path, object_store::path::Error> {
        let rel = rel.trim_matches('/');
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => object_store::path::Path::parse(rel),
            (false, true) => object_store::path::Path::parse(&self.prefix),
            (false, false) => object_store::path::Path::parse(format!("{}/{rel}", self.prefix)),
        }
    }
}

/// Opens destination `id` for Test, browse or copies.
pub async fn open(app: &App, id: &str, patience: Patience) -> Result<Bucket, DestinationError> {
    let stored = super::stored(app, id).await?;
    build(&stored, patience, app.destinations.requests.clone())
}

fn is_http(endpoint: &Option<String>) -> bool {
    endpoint
        .as_deref()
        .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://"))
}

/// The clients of `d`. Nothing is sent yet: building only checks the settings.
pub fn build(
    d: &Stored,
    patience: Patience,
    requests: Arc<DestinationRequests>,
) -> Result<Bucket, DestinationError> {
    // reqwest is built without a crypto provider: the process's must be ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = &d.settings;
    let kind = s.place.kind();
    let secrets = s.credentials.values();
    let unusable =
        |e: object_store::Error| DestinationError::Unusable(scrub(&format!("{e}"), &secrets));
    let counted = Counted::new(kind.as_str(), requests.clone());
    let sender = || {
        Sender::new(kind.as_str(), requests.clone())
            .map_err(|e| DestinationError::Unusable(scrub(&e, &secrets)))
    };
    let bucket = |store: Arc<dyn ObjectStore>,
                  multipart: Arc<dyn MultipartStore>,
                  list: Arc<dyn PaginatedListStore>| Bucket {
        id: d.id.clone(),
        kind,
        store,
        multipart,
        list,
        prefix: s.prefix.clone(),
        metadata: None,
        blobs: None,
    };
    match (&s.place, &s.credentials) {
        (
            Place::S3 {
                bucket: name,
                region,
                endpoint,
                path_style,
            },
            Credentials::S3 {
                access_key_id,
                secret_access_key,
            },
        ) => {
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(name)
                .with_region(region)
                .with_access_key_id(access_key_id.expose())
                .with_secret_access_key(secret_access_key.expose())
                .with_virtual_hosted_style_request(!path_style)
                .with_checksum_algorithm(Checksum::SHA256)
                .with_retry(patience.retry())
                .with_client_options(patience.options(is_http(endpoint)))
                .with_http_connector(counted);
            if let Some(e) = endpoint {
                b = b.with_endpoint(e);
            }
            let c = Arc::new(b.build().map_err(unusable)?);
            // The BLAKE3 is known when an upload completes: set by copying onto itself.
            let url = s3::bucket_url(name, region, endpoint.as_deref(), *path_style);
            let metadata = S3Metadata::new(
                sender()?,
                (url, name, region),
                (access_key_id.expose(), secret_access_key.expose()),
            );
            Ok(Bucket {
                metadata: Some(Arc::new(metadata)),
                ..bucket(c.clone(), c.clone(), c)
            })
        }
        (
            Place::AzureBlob {
                account,
                container,
                endpoint,
            },
            Credentials::AzureBlob { access_key },
        ) => {
            // An explicit endpoint, never `with_use_emulator` (it ignores the endpoint).
            let mut b = MicrosoftAzureBuilder::new()
                .with_account(account)
                .with_container_name(container)
                .with_access_key(access_key.expose().trim())
                .with_retry(patience.retry())
                .with_client_options(patience.options(is_http(endpoint)))
                .with_http_connector(counted);
            if let Some(e) = endpoint {
                b = b.with_endpoint(e.clone());
            }
            let c = Arc::new(b.build().map_err(unusable)?);
            // object_store sends Azure no checksum, and Put Block List no metadata: Bifrost
            // puts blobs and blocks with Content-MD5 and sets metadata after completion.
            let account_url = endpoint
                .clone()
                .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
            let blobs = AzureBlobs::new(
                sender()?,
                &account_url,
                (account, container),
                access_key.expose().trim(),
            )
            .map_err(|e| DestinationError::Unusable(scrub(&e, &secrets)))?;
            let blobs = Arc::new(blobs);
            Ok(Bucket {
                metadata: Some(blobs.clone()),
                blobs: Some(blobs),
                ..bucket(c.clone(), c.clone(), c)
            })
        }
        (
            Place::Gcs {
                bucket: name,
                endpoint,
            },
            Credentials::Gcs {
                service_account_json,
            },
        ) => {
            let mut b = GoogleCloudStorageBuilder::new()
                .with_bucket_name(name)
                .with_service_account_key(service_account_json.expose())
                .with_retry(patience.retry())
                .with_client_options(patience.options(is_http(endpoint)))
                .with_http_connector(counted);
            if let Some(e) = endpoint {
                b = b.with_base_url(e);
            }
            let c = Arc::new(b.build().map_err(unusable)?);
            Ok(bucket(c.clone(), c.clone(), c))
        }
        _ => Err(DestinationError::Unusable(
            "the stored credentials are of another kind than the destination; enter them again"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::destinations::request::settings;

    fn stored(json: &str) -> Stored {
        Stored {
            id: "d1".into(),
            settings: settings(serde_json::from_str(json).unwrap()).unwrap(),
            created: String::new(),
            updated: String::new(),
        }
    }

    #[test]
    fn each_kind_builds_and_keys_go_under_the_prefix() {
        let requests = Arc::new(DestinationRequests::default());
        let s3 = stored(
            r#"{"name":"a","kind":"s3","bucket":"bkt","prefix":"p/q","endpoint":"http://127.0.0.1:9","access_key_id":"a","secret_access_key":"s"}"#,
        );
        let b = build(&s3, Patience::Transfer, requests.clone()).unwrap();
        assert_eq!(b.kind.as_str(), "s3");
        assert_eq!(
            b.key("dept/F~1 #%.txt").unwrap().as_ref(),
            "p/q/dept/F~1 #%.txt"
        );
        assert_eq!(b.key("").unwrap().as_ref(), "p/q");
        assert!(b.key("a/../b").is_err());
        let az = stored(
            r#"{"name":"a","kind":"azure_blob","account":"devstoreaccount1","container":"ccc","access_key":"a2V5","endpoint":"http://127.0.0.1:9/devstoreaccount1"}"#,
        );
        let b = build(&az, Patience::Interactive, requests.clone()).unwrap();
        assert_eq!(b.key("x/y").unwrap().as_ref(), "x/y");
        let gcs = stored(
            r#"{"name":"a","kind":"gcs","bucket":"bkt","service_account_json":"{\"client_email\":\"\",\"private_key_id\":\"\",\"private_key\":\"\",\"disable_oauth\":true}","endpoint":"http://127.0.0.1:9"}"#,
        );
        let r = build(&gcs, Patience::Interactive, requests);
        assert!(r.is_ok(), "{:?}", r.err());
    }
}
