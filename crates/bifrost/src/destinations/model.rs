//! A stored destination in memory: where it is ([`Place`], kept as plain JSON in the database),
//! its credentials ([`Credentials`], kept only sealed), and the checked way a create or patch
//! request becomes one.

use mover_proto::destinations::{
    DestinationKind, DestinationPatch, DestinationView, NewDestination, Secret,
};
use serde::{Deserialize, Serialize};

use super::check;
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

fn opt_endpoint(e: Option<String>) -> Result<Option<String>, String> {
    match e {
        Some(e) if !e.trim().is_empty() => check::endpoint(&e).map(Some),
        _ => Ok(None),
    }
}

/// Checks a create request and normalizes it.
pub fn settings(req: NewDestination) -> Result<Settings, String> {
    Ok(match req {
        NewDestination::S3 {
            name,
            bucket,
            prefix,
            endpoint,
            region,
            path_style,
            access_key_id,
            secret_access_key,
        } => {
            check::secret(&access_key_id, "access_key_id")?;
            check::secret(&secret_access_key, "secret_access_key")?;
            let endpoint = opt_endpoint(endpoint)?;
            Settings {
                name: check::name(&name)?,
                prefix: check::prefix(&prefix, "prefix")?,
                place: Place::S3 {
                    bucket: check::s3_bucket(&bucket)?,
                    region: check::region(region.as_deref().unwrap_or("us-east-1"))?,
                    // A service at its own URL (MinIO, moto, Ceph...) usually wants path style;
                    // AWS itself, virtual-hosted.
                    path_style: path_style.unwrap_or(endpoint.is_some()),
                    endpoint,
                },
                credentials: Credentials::S3 {
                    access_key_id,
                    secret_access_key,
                },
            }
        }
        NewDestination::AzureBlob {
            name,
            account,
            container,
            access_key,
            endpoint,
            prefix,
        } => {
            check::azure_key(&access_key)?;
            Settings {
                name: check::name(&name)?,
                prefix: check::prefix(&prefix, "prefix")?,
                place: Place::AzureBlob {
                    account: check::azure_account(&account)?,
                    container: check::azure_container(&container)?,
                    endpoint: opt_endpoint(endpoint)?,
                },
                credentials: Credentials::AzureBlob { access_key },
            }
        }
        NewDestination::Gcs {
            name,
            bucket,
            service_account_json,
            endpoint,
            prefix,
        } => {
            check::service_account(&service_account_json)?;
            Settings {
                name: check::name(&name)?,
                prefix: check::prefix(&prefix, "prefix")?,
                place: Place::Gcs {
                    bucket: check::gcs_bucket(&bucket)?,
                    endpoint: opt_endpoint(endpoint)?,
                },
                credentials: Credentials::Gcs {
                    service_account_json,
                },
            }
        }
    })
}

/// `old` with `patch` applied, checked as a create request would be. A field that the
/// destination's kind does not have is refused by name.
pub fn patched(old: Settings, patch: DestinationPatch) -> Result<Settings, String> {
    let kind = old.place.kind();
    if patch.kind.is_some_and(|k| k != kind) {
        return Err("a destination cannot change kind; create a new one".into());
    }
    let not_for = |field: &str| format!("{field} does not apply to {} destinations", kind.as_str());
    let name = patch.name.unwrap_or(old.name);
    let prefix = patch.prefix.unwrap_or(old.prefix);
    let req = match (old.place, old.credentials) {
        (
            Place::S3 {
                bucket,
                region,
                endpoint,
                path_style,
            },
            Credentials::S3 {
                access_key_id,
                secret_access_key,
            },
        ) => {
            for (given, field) in [
                (patch.account.is_some(), "account"),
                (patch.container.is_some(), "container"),
                (patch.access_key.is_some(), "access_key"),
                (patch.service_account_json.is_some(), "service_account_json"),
            ] {
                if given {
                    return Err(not_for(field));
                }
            }
            NewDestination::S3 {
                name,
                bucket: patch.bucket.unwrap_or(bucket),
                prefix,
                endpoint: patch.endpoint.or(endpoint),
                region: Some(patch.region.unwrap_or(region)),
                path_style: Some(patch.path_style.unwrap_or(path_style)),
                access_key_id: patch.access_key_id.unwrap_or(access_key_id),
                secret_access_key: patch.secret_access_key.unwrap_or(secret_access_key),
            }
        }
        (
            Place::AzureBlob {
                account,
                container,
                endpoint,
            },
            Credentials::AzureBlob { access_key },
        ) => {
            for (given, field) in [
                (patch.bucket.is_some(), "bucket"),
                (patch.region.is_some(), "region"),
                (patch.path_style.is_some(), "path_style"),
                (patch.access_key_id.is_some(), "access_key_id"),
                (patch.secret_access_key.is_some(), "secret_access_key"),
                (patch.service_account_json.is_some(), "service_account_json"),
            ] {
                if given {
                    return Err(not_for(field));
                }
            }
            NewDestination::AzureBlob {
                name,
                account: patch.account.unwrap_or(account),
                container: patch.container.unwrap_or(container),
                access_key: patch.access_key.unwrap_or(access_key),
                endpoint: patch.endpoint.or(endpoint),
                prefix,
            }
        }
        (
            Place::Gcs { bucket, endpoint },
            Credentials::Gcs {
                service_account_json,
            },
        ) => {
            for (given, field) in [
                (patch.account.is_some(), "account"),
                (patch.container.is_some(), "container"),
                (patch.region.is_some(), "region"),
                (patch.path_style.is_some(), "path_style"),
                (patch.access_key_id.is_some(), "access_key_id"),
                (patch.secret_access_key.is_some(), "secret_access_key"),
                (patch.access_key.is_some(), "access_key"),
            ] {
                if given {
                    return Err(not_for(field));
                }
            }
            NewDestination::Gcs {
                name,
                bucket: patch.bucket.unwrap_or(bucket),
                service_account_json: patch.service_account_json.unwrap_or(service_account_json),
                endpoint: patch.endpoint.or(endpoint),
                prefix,
            }
        }
        _ => return Err("the stored credentials are of another kind than the destination".into()),
    };
    settings(req)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s3() -> Settings {
        settings(serde_json::from_str(r#"{"name":"Archive","kind":"s3","bucket":"bkt","prefix":"/a/b/","endpoint":"http://127.0.0.1:9000","access_key_id":"AK","secret_access_key":"SK"}"#).unwrap()).unwrap()
    }

    #[test]
    fn an_s3_request_is_normalized_with_its_defaults() {
        let s = s3();
        assert_eq!(s.prefix, "a/b");
        assert_eq!(
            s.place,
            Place::S3 {
                bucket: "bkt".into(),
                region: "us-east-1".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                path_style: true,
            }
        );
        assert!(!format!("{s:?}").contains("SK"));
    }

    #[test]
    fn a_patch_replaces_given_secrets_keeps_others_and_refuses_foreign_fields() {
        let p: DestinationPatch =
            serde_json::from_str(r#"{"name":"New","secret_access_key":"SK2","endpoint":""}"#)
                .unwrap();
        let s = patched(s3(), p).unwrap();
        assert_eq!(s.name, "New");
        let Credentials::S3 {
            access_key_id,
            secret_access_key,
        } = &s.credentials
        else {
            panic!("kind changed");
        };
        assert_eq!(
            (access_key_id.expose(), secret_access_key.expose()),
            ("AK", "SK2")
        );
        assert!(matches!(s.place, Place::S3 { endpoint: None, .. }));
        let e = patched(
            s3(),
            serde_json::from_str(r#"{"container":"abc"}"#).unwrap(),
        );
        assert_eq!(
            e.unwrap_err(),
            "container does not apply to s3 destinations"
        );
        let e = patched(s3(), serde_json::from_str(r#"{"kind":"gcs"}"#).unwrap());
        assert!(e.is_err());
        let e = patched(s3(), serde_json::from_str(r#"{"bucket":"b"}"#).unwrap());
        assert!(e.is_err());
    }
}
