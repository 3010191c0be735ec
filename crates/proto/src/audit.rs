//! JSON shapes of the audit trail (`/api/v1/audit`): who changed what, from where, and when.

use serde::{Deserialize, Serialize};

/// Most rows one call returns.
pub const MAX_AUDIT_ROWS: u32 = 10_000;
/// Rows a call returns when it names no `limit`.
pub const DEFAULT_AUDIT_ROWS: u32 = 500;

/// One row of the audit trail. Rows are only ever appended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRow {
    /// Its place in the trail: later rows have larger numbers.
    pub seq: i64,
    /// When, RFC 3339 in UTC, to the second.
    pub at: String,
    /// Who: an account's name, `admin token`, `token:NAME`, or `cli:UNIX-USER` for the
    /// `bifrost` command on the server.
    pub actor: String,
    /// The actor's role then (none for a failed sign-in).
    pub role: Option<String>,
    /// The address the call came from (`local` for the `bifrost` command).
    pub addr: String,
    /// What, e.g. `job.create`, `connector.revoke`, `sign_in`, `sign_in_failed`.
    pub action: String,
    /// The id or name acted on.
    pub target: Option<String>,
    /// More about it, e.g. a connector's new name.
    pub detail: Option<String>,
}

/// A page of the trail, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// The rows.
    pub rows: Vec<AuditRow>,
    /// Pass as `before` for the next (older) page; none on the last one.
    pub next_before: Option<i64>,
}
