//! JSON shapes of scoped API tokens (`/api/v1/tokens`): what an admin asks for, what the list
//! shows, and the one answer that carries a token's secret.
//!
//! A token is `bft_` and 64 lowercase hex characters (32 random bytes). Bifrost keeps only its
//! BLAKE3 hash, so the secret appears once, in [`CreatedToken`], and never again.

use serde::{Deserialize, Serialize};

use crate::accounts::{Role, Secret};

/// What every API token starts with, so a leaked one is easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "bft_";
/// Longest token name, in characters (the same rule as account names).
pub const MAX_TOKEN_NAME_CHARS: usize = crate::accounts::MAX_USER_NAME_CHARS;
/// Longest `expires` text accepted; an RFC 3339 time has at most about 35 characters.
pub const MAX_EXPIRES_CHARS: usize = 64;
/// Live (neither revoked nor expired) API tokens at once at most.
pub const MAX_LIVE_TOKENS: usize = 1000;

/// `POST /api/v1/tokens` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. `prometheus`: 1 to 64 letters, digits and `. _ - @`.
    pub name: String,
    /// The role it acts with.
    pub role: Role,
    /// When it stops working: an RFC 3339 time in the future, such as
    /// `2027-03-01T00:00:00Z`; absent or `null` for never.
    #[serde(default)]
    pub expires: Option<String>,
}

/// An API token as `GET /api/v1/tokens` lists it: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    /// Id (16 hex characters), for `DELETE /api/v1/tokens/{id}`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When it was made, RFC 3339.
    pub created: String,
    /// When it stops working, RFC 3339; `null` for never.
    pub expires: Option<String>,
    /// When it was last used, RFC 3339, to the minute (written at most once a minute).
    pub last_used: Option<String>,
    /// Revoked: it no longer works.
    pub revoked: bool,
    /// Who made it (an account name, or `admin token`).
    pub created_by: Option<String>,
}

/// `POST /api/v1/tokens` answer (201): the token, with its secret shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// The token's listing.
    #[serde(flatten)]
    pub info: Token,
    /// The secret, to send as `Authorization: Bearer TOKEN`. It cannot be shown again.
    pub token: Secret,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_are_strict_and_secrets_stay_out_of_debug() {
        let t: NewToken =
            serde_json::from_str(r#"{"name":"prom","role":"metrics","expires":null}"#).unwrap();
        assert_eq!((t.role, t.expires), (Role::Metrics, None));
        for bad in [
            r#"{"name":"prom","role":"metrics","scope":"all"}"#,
            r#"{"name":"prom","role":"root"}"#,
            r#"{"name":"prom","role":"admin","expires":90}"#,
            r#"{"role":"admin"}"#,
        ] {
            assert!(serde_json::from_str::<NewToken>(bad).is_err(), "{bad}");
        }
        let created = CreatedToken {
            info: Token {
                id: "0123456789abcdef".into(),
                name: "prom".into(),
                role: Role::Metrics,
                created: "2026-12-02T17:00:00Z".into(),
                expires: None,
                last_used: None,
                revoked: false,
                created_by: Some("alice".into()),
            },
            token: Secret::new("bft_secretsecret"),
        };
        assert!(!format!("{created:?}").contains("secretsecret"));
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(json["token"], "bft_secretsecret");
        assert_eq!(json["id"], "0123456789abcdef");
    }
}
