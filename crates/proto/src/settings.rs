//! JSON shape of Bifrost's settings (`/api/v1/settings`), with their limits beside them.

use serde::{Deserialize, Serialize};

/// Most allowed destination roots one Bifrost keeps.
pub const MAX_ALLOWED_ROOTS: usize = 64;
/// Longest allowed destination root, in bytes (Linux's `PATH_MAX`).
pub const MAX_ROOT_BYTES: usize = 4096;

/// `GET /api/v1/settings` answer and `PUT /api/v1/settings` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Absolute folders on Bifrost's machine that folder destinations must be inside; empty:
    /// any folder Bifrost's user can write. Required in a `PUT`, so `{}` cannot clear it by
    /// mistake (`[]` does, on purpose).
    pub allowed_roots: Vec<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        let ok: Settings = serde_json::from_str(r#"{"allowed_roots":["/srv"]}"#).unwrap();
        assert_eq!(ok.allowed_roots, ["/srv"]);
        assert!(serde_json::from_str::<Settings>("{}").is_err());
        assert!(
            serde_json::from_str::<Settings>(r#"{"allowed_roots":[],"allowed_root":"/"}"#).is_err()
        );
    }
}
