//! JSON shapes of `/api/v1/destinations`: named object-store destinations (S3, Azure Blob,
//! Google Cloud Storage), their Test action and their prefix browser.
//!
//! Credentials travel only inward: [`NewDestination`] and [`DestinationPatch`] carry them as
//! [`Secret`]s, and nothing Bifrost answers ([`DestinationView`], [`TestResult`],
//! [`Listing`]) has a field that could hold one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest secret accepted (a service account JSON is ~2.3 KiB).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;
/// Most entries (folders plus objects) a browse answer shows.
pub const MAX_BROWSE_ENTRIES: usize = 1_000;

/// A credential as it arrives. `Debug` and `Display` print `[redacted]`, so a request logged
/// or formatted by mistake does not carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The credential itself, for the client that signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Kinds of stored destination.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// Amazon S3 or an S3-compatible service.
    S3,
    /// An Azure Blob Storage container.
    AzureBlob,
    /// A Google Cloud Storage bucket.
    Gcs,
}

impl DestinationKind {
    /// The API's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::S3 => "s3",
            DestinationKind::AzureBlob => "azure_blob",
            DestinationKind::Gcs => "gcs",
        }
    }
}

/// `POST /api/v1/destinations` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewDestination {
    /// S3: AWS (no `endpoint`) or any S3-compatible service by URL.
    S3 {
        /// Display name.
        name: String,
        /// Bucket name (3-63 lowercase letters, digits, dots and hyphens).
        bucket: String,
        /// Key prefix every object of this destination goes under ("" for the whole bucket).
        #[serde(default)]
        prefix: String,
        /// `http(s)://host[:port]` of an S3-compatible service; AWS when absent.
        #[serde(default)]
        endpoint: Option<String>,
        /// Region the requests are signed for (default `us-east-1`).
        #[serde(default)]
        region: Option<String>,
        /// Path-style addressing (`endpoint/bucket/key`), as most S3-compatible services want.
        #[serde(default)]
        path_style: Option<bool>,
        /// Access key id.
        access_key_id: Secret,
        /// Secret access key.
        secret_access_key: Secret,
    },
    /// Azure Blob Storage, with an account's Shared Key.
    AzureBlob {
        /// Display name.
        name: String,
        /// Storage account (3-24 lowercase letters and digits).
        account: String,
        /// Container (3-63 lowercase letters, digits and hyphens).
        container: String,
        /// The account's access key (base64).
        access_key: Secret,
        /// The account URL (`http://127.0.0.1:10000/devstoreaccount1` for Azurite); the public
        /// cloud's `https://ACCOUNT.blob.core.windows.net` when absent.
        #[serde(default)]
        endpoint: Option<String>,
        /// Name prefix every blob of this destination goes under.
        #[serde(default)]
        prefix: String,
    },
    /// Google Cloud Storage, with a service account.
    Gcs {
        /// Display name.
        name: String,
        /// Bucket name.
        bucket: String,
        /// The service account's JSON key file, as text.
        service_account_json: Secret,
        /// Base URL of a GCS-compatible service; Google's when absent.
        #[serde(default)]
        endpoint: Option<String>,
        /// Name prefix every object of this destination goes under.
        #[serde(default)]
        prefix: String,
    },
}

/// `PATCH /api/v1/destinations/{id}` body: any of the fields of the destination's kind. A
/// secret given replaces the stored one; one left out keeps it. An empty `endpoint` removes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    /// Must equal the stored kind when given (a destination cannot change kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DestinationKind>,
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// S3 or GCS bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Azure account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Azure container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Service URL ("" to use the provider's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3 path-style addressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// S3 access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<Secret>,
    /// S3 secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    /// Azure access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<Secret>,
    /// GCS service account JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_json: Option<Secret>,
}

/// A stored destination as the API shows it: never its credentials.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DestinationView {
    /// Stable id; jobs name it in `{"kind":"stored","id":...}`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: DestinationKind,
    /// S3 or GCS bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Azure account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Azure container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Key prefix ("" or `a/b`, without leading or trailing `/`).
    pub prefix: String,
    /// Service URL, when not the provider's default.
    pub endpoint: Option<String>,
    /// S3 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3 path-style addressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Last change (RFC 3339).
    pub updated: String,
}

/// `POST /api/v1/destinations/{id}/test` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestResult {
    /// Whether listing, writing and deleting a small object under the prefix all worked.
    pub ok: bool,
    /// The step that failed and the service's own status, code and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One object in a browse answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListedObject {
    /// Key relative to the destination's prefix (what a job's `path` plus names give).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (RFC 3339).
    pub modified: String,
}

/// `GET /api/v1/destinations/{id}/browse?prefix=P` answer: one level below `P`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing {
    /// The folder listed, relative to the destination's prefix ("" for its top).
    pub prefix: String,
    /// Folders directly below it, relative to the destination's prefix, each ending in `/`.
    pub folders: Vec<String>,
    /// Objects directly below it.
    pub objects: Vec<ListedObject>,
    /// More entries exist than the [`MAX_BROWSE_ENTRIES`] shown.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_issue_s3_body_parses_and_secrets_print_redacted() {
        let body = r#"{"name":"Archive","kind":"s3","bucket":"b","prefix":"","endpoint":"http://127.0.0.1:9000","region":"us-east-1","path_style":true,"access_key_id":"AK","secret_access_key":"SHHH"}"#;
        let d: NewDestination = serde_json::from_str(body).unwrap();
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("SHHH") && !shown.contains("AK\""),
            "{shown}"
        );
        assert_eq!(format!("{}", Secret::new("x")), "[redacted]");
        let NewDestination::S3 {
            secret_access_key, ..
        } = d
        else {
            panic!("not s3");
        };
        assert_eq!(secret_access_key.expose(), "SHHH");
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let extra = r#"{"name":"a","kind":"gcs","bucket":"bbb","service_account_json":"{}","x":1}"#;
        assert!(serde_json::from_str::<NewDestination>(extra).is_err());
        let kind = r#"{"name":"a","kind":"ftp"}"#;
        assert!(serde_json::from_str::<NewDestination>(kind).is_err());
        assert!(serde_json::from_str::<DestinationPatch>(r#"{"secret":"x"}"#).is_err());
    }
}
