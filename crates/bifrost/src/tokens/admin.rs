//! The `bifrost token` commands' work: rotating the bootstrap admin token and listing API
//! tokens, on the data folder's database, while Bifrost runs or not (the caller checks that it
//! runs as the folder's owner, as `bifrost user` does).

use std::path::{Path, PathBuf};

use super::{hash, new_secret, rfc3339, TokenError};
use crate::accounts::Secret;
use crate::store::{Store, TokenRow};

/// The bootstrap admin token's file in the data folder.
pub const FILE: &str = "admin.token";

/// A rotated bootstrap token.
pub struct Rotated {
    /// The new token (to show once).
    pub token: Secret,
    /// Where it was written.
    pub file: PathBuf,
    /// Sessions made with the old token, ended.
    pub ended: usize,
}

/// Why `bifrost token rotate` failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The new token could not be made or stored.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token file could not be written; nothing changed.
    #[error("cannot write {}: {reason}; the old admin token still works", .file.display())]
    File {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Makes a new bootstrap admin token: writes it to `DATA/admin.token` (0600), then replaces the
/// old one's hash in the database, which ends the sessions made with it. A running Bifrost
/// looks tokens up in the database on each call, so the old token stops working at once.
///
/// The file first: it is what `bifrost serve` imports at start, so if the database step fails
/// the next start still takes the new token (and running the command again finishes the job).
pub async fn rotate(store: &Store, data: &Path) -> Result<Rotated, RotateError> {
    let token = new_secret()?;
    let file = data.join(FILE);
    crate::tls::write_private(&file, format!("{}\n", token.expose()).as_bytes()).map_err(|e| {
        RotateError::File {
            file: file.clone(),
            reason: format!("{e:#}"),
        }
    })?;
    let (_, ended) = store
        .set_bootstrap(hash(token.expose()))
        .await
        .map_err(TokenError::from)?;
    let detail = format!("{ended} session(s) ended");
    crate::accounts::admin::audited(store, "token.rotate", "admin token", Some(detail))
        .await
        .map_err(TokenError::from)?;
    Ok(Rotated { token, file, ended })
}

/// One line of `bifrost token list`.
pub fn list_line(t: &TokenRow, now: i64) -> String {
    let state = if t.revoked {
        "revoked"
    } else if !t.live(now) {
        "expired"
    } else {
        "live"
    };
    let when = |at: Option<i64>, none: &str| at.map_or_else(|| none.to_owned(), rfc3339);
    format!(
        "{:<16} {:<24} {:<9} {:<8} {:<20} {}",
        t.id,
        t.name,
        t.role.as_str(),
        state,
        when(t.expires, "never"),
        when(t.last_used, "never"),
    )
}

/// The header of [`list_line`]s.
pub const LIST_HEADER: &str =
    "ID               NAME                     ROLE      STATE    EXPIRES              LAST USED";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::accounts::Role;
    use crate::store::{Liveness, Via, BOOTSTRAP_ID};

    #[tokio::test]
    async fn rotate_writes_the_file_and_ends_the_old_tokens_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bifrost.db")).unwrap();
        store.set_bootstrap(hash("old")).await.unwrap();
        let live = Liveness {
            now: crate::store::unix_now(),
            idle: 600,
            max: 3600,
            touch_every: None,
        };
        store
            .create_session(
                "s".into(),
                "c".into(),
                Via::Token(BOOTSTRAP_ID.into()),
                live,
            )
            .await
            .unwrap();
        let rotated = rotate(&store, dir.path()).await.unwrap();
        assert_eq!(rotated.ended, 1);
        let written = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(written.trim(), rotated.token.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&rotated.file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(store.live_token(hash("old"), 1).await.unwrap().is_none());
        let now = store.live_token(hash(&written), 1).await.unwrap().unwrap();
        assert_eq!((now.role, now.bootstrap), (Role::Admin, true));
        assert!(store.session("s".into(), live).await.unwrap().is_none());
    }

    #[test]
    fn list_lines_say_whether_a_token_works() {
        let mut t = TokenRow {
            id: "0123456789abcdef".into(),
            name: "prometheus".into(),
            role: Role::Metrics,
            created: String::new(),
            expires: Some(1_800_000_000),
            last_used: None,
            revoked: false,
            bootstrap: false,
            created_by: None,
        };
        let line = list_line(&t, 1_700_000_000);
        assert!(
            line.contains(" live ") && line.contains("2027-01-15T08:00:00Z"),
            "{line}"
        );
        assert!(line.ends_with("never"), "{line}");
        assert!(list_line(&t, 1_800_000_000).contains(" expired "));
        t.revoked = true;
        assert!(list_line(&t, 1_700_000_000).contains(" revoked "));
    }
}
