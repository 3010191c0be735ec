//! JSON shapes of signing in (`/api/v1/session`): accounts, roles and console sessions.
//!
//! Passwords and the admin token travel only inward, as [`Secret`]s whose `Debug` is masked;
//! nothing Bifrost answers has a field that could hold one.

use serde::{Deserialize, Serialize};

pub use crate::destinations::Secret;

/// Shortest password a user may choose.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (hashing cost does not grow with it, but bodies stay small).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest account name.
pub const MAX_USER_NAME_CHARS: usize = 64;

/// What an account may do. Until the route table (issue 17, slice 2) every role acts as admin.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages accounts, destinations and settings, and everything an operator does.
    Admin,
    /// Authorizes and revokes connectors, browses, runs and controls jobs.
    Operator,
    /// Sees connectors, jobs and reports.
    Viewer,
    /// Reads `/metrics` only.
    Metrics,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::Metrics];

    /// The role's name, as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Metrics => "metrics",
        }
    }

    /// The role named `s`, if any.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /api/v1/session` body: `{"name", "password"}` for an account, or `{"token"}` for the
/// bootstrap admin token (`DATA/admin.token`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The account's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The admin token instead of an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

/// `POST /api/v1/session/password` body: the signed-in user's new password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now (the one-time password after `bifrost user add` or `reset`).
    pub current: Secret,
    /// The new one: at least [`MIN_PASSWORD_CHARS`] characters, not the current one.
    pub new: Secret,
}

/// A console session: who it is, and the CSRF token its state-changing calls carry in
/// `X-CSRF-Token`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// Whether the request came with a live session.
    pub signed_in: bool,
    /// CSRF token (empty when signed out).
    pub csrf: String,
    /// Account name (`admin token` for the bootstrap token; absent when signed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The account's role (absent when signed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The user must choose a new password before anything else (`POST
    /// /api/v1/session/password`); every other call gets `403` until then.
    #[serde(default)]
    pub must_change: bool,
}

impl SessionInfo {
    /// The answer for a caller without a live session.
    pub fn signed_out() -> Self {
        Self {
            signed_in: false,
            csrf: String::new(),
            name: None,
            role: None,
            must_change: false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roles_round_trip_and_secrets_stay_out_of_debug() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        assert_eq!(Role::parse("root"), None);
        let login: Login =
            serde_json::from_str(r#"{"name":"alice","password":"hunter2hunter2"}"#).unwrap();
        assert!(!format!("{login:?}").contains("hunter2"));
        assert!(serde_json::from_str::<Login>(r#"{"user":"alice"}"#).is_err());
    }
}
