//! The checked way a create or patch request becomes a destination's [`Settings`]: names,
//! buckets, endpoints and prefixes checked and normalized, secrets kept or replaced.

use mover_proto::destinations::{DestinationPatch, NewDestination};

use super::check;
use super::model::{Credentials, Place, Settings};

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
