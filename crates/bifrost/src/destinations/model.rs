//! A stored destination in memory: where it is ([`Place`], kept as plain JSON in the database),
//! its credentials ([`Credentials`], kept only sealed), and how the API shows it (`request.rs`
//! makes one from a create or patch request).

use mover_proto::destinations::{DestinationKind, DestinationView, Secret};
use serde::{Deserialize, Serialize};

use crate::store::DestinationRow;

/// Where a destination's objects go: everything but the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Place {
    /// S3 or S3-compatible.
    S3 {
        /// Bucket.
        bucket: String,
        /// Signing region.
        region: String,
        /// Service URL; AWS when `None`.
        endpoint: Option<String>,
        /// Path-style addressing.
        path_style: bool,
    },
    /// Azure Blob.
    AzureBlob {
        /// Storage account.
        account: String,
        /// Container.
        container: String,
        /// Account URL; the public cloud's when `None`.
        endpoint: Option<String>,
    },
    /// Google Cloud Storage.
    Gcs {
        /// Bucket.
        bucket: String,
        /// Base URL; Google's when `None`.
        endpoint: Option<String>,
    },
}

impl Place {
    /// Its kind.
    pub fn kind(&self) -> DestinationKind {
        match self {
            Place::S3 { .. } => DestinationKind::S3,
            Place::AzureBlob { .. } => DestinationKind::AzureBlob,
            Place::Gcs { .. } => DestinationKind::Gcs,
        }
    }
}

/// A destination's credentials; only ever stored sealed. Every field is a [`Secret`], so
/// `Debug` shows none of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credentials {
    /// S3 key pair.
    S3 {
        /// Access key id.
        access_key_id: Secret,
        /// Secret access key.
        secret_access_key: Secret,
    },
    /// Azure Shared Key.
    AzureBlob {
        /// The account key.
        access_key: Secret,
    },
    /// GCS service account.
    Gcs {
        /// The key file's JSON.
        service_account_json: Secret,
    },
}

impl Credentials {
    /// Every secret value (and a service account's private key alone), for scrubbing texts
    /// that might quote one.
    pub fn values(&self) -> Vec<String> {
        match self {
            Credentials::S3 {
                access_key_id,
                secret_access_key,
            } => vec![
                access_key_id.expose().to_owned(),
                secret_access_key.expose().to_owned(),
            ],
            Credentials::AzureBlob { access_key } => vec![access_key.expose().to_owned()],
            Credentials::Gcs {
                service_account_json,
            } => {
                let json = service_account_json.expose();
                let key = serde_json::from_str::<serde_json::Value>(json)
                    .ok()
                    .and_then(|v| v.get("private_key")?.as_str().map(str::to_owned));
                std::iter::once(json.to_owned()).chain(key).collect()
            }
        }
    }
}

/// A destination's checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Display name.
    pub name: String,
    /// Where.
    pub place: Place,
    /// Key prefix, normalized ("" or `a/b`).
    pub prefix: String,
    /// Credentials.
    pub credentials: Credentials,
}

/// A stored destination, its credentials opened.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Id.
    pub id: String,
    /// Settings.
    pub settings: Settings,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Last change (RFC 3339).
    pub updated: String,
}

/// The API's view of a destination row whose settings are `place`: it has no credentials to
/// show, so listing works even when they cannot be opened.
pub fn view(row: &DestinationRow, place: &Place) -> DestinationView {
    let mut v = DestinationView {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: place.kind(),
        bucket: None,
        account: None,
        container: None,
        prefix: row.prefix.clone(),
        endpoint: None,
        region: None,
        path_style: None,
        created: row.created.clone(),
        updated: row.updated.clone(),
    };
    match place {
        Place::S3 {
            bucket,
            region,
            endpoint,
            path_style,
        } => {
            v.bucket = Some(bucket.clone());
            v.region = Some(region.clone());
            v.endpoint = endpoint.clone();
            v.path_style = Some(*path_style);
        }
        Place::AzureBlob {
            account,
            container,
            endpoint,
        } => {
            v.account = Some(account.clone());
            v.container = Some(container.clone());
            v.endpoint = endpoint.clone();
        }
        Place::Gcs { bucket, endpoint } => {
            v.bucket = Some(bucket.clone());
            v.endpoint = endpoint.clone();
        }
    }
    v
}
