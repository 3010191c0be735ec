//! API tokens in the database: `api_tokens`, keyed by the BLAKE3 hash of each token (the
//! secret itself is never stored), plus the one bootstrap admin token imported from
//! `DATA/admin.token`. `bifrost token rotate` writes here while Bifrost runs, and Bifrost looks a
//! bearer token up on every request, so a rotated or revoked token stops working at once.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{new_id, now, Store, StoreError};
use crate::accounts::Role;

/// The table. `expires` and `last_used` are Unix seconds; `bootstrap` marks the admin token of
/// `DATA/admin.token`, which the API neither lists nor revokes.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created TEXT,
    expires INTEGER,
    last_used INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    bootstrap INTEGER NOT NULL DEFAULT 0,
    created_by TEXT
);
";

/// The bootstrap token's id: there is one, and sessions made with it point here.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// `last_used` is written when it is at least this old (seconds): writing it on every call
/// would make each API call a database write.
pub const LAST_USED_EVERY: i64 = 60;

/// Creates the table.
pub(super) fn bring_up(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)
}

/// An API token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Id ([`BOOTSTRAP_ID`] for the bootstrap token).
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When it was made, RFC 3339.
    pub created: String,
    /// When it stops working, Unix seconds.
    pub expires: Option<i64>,
    /// When it was last used, Unix seconds (to [`LAST_USED_EVERY`]).
    pub last_used: Option<i64>,
    /// Revoked.
    pub revoked: bool,
    /// The bootstrap admin token.
    pub bootstrap: bool,
    /// Who made it.
    pub created_by: Option<String>,
}

impl TokenRow {
    /// Whether it works at `now` (Unix seconds): not revoked, not expired.
    pub fn live(&self, now: i64) -> bool {
        !self.revoked && self.expires.is_none_or(|e| now < e)
    }
}

const TOKEN_COLS: &str =
    "id, name, role, created, expires, last_used, revoked, bootstrap, created_by";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    let role: String = r.get(2)?;
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        // A role this Bifrost does not know (written by a newer one) gets the least.
        role: Role::parse(&role).unwrap_or(Role::Metrics),
        created: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
        expires: r.get(4)?,
        last_used: r.get(5)?,
        revoked: r.get(6)?,
        bootstrap: r.get(7)?,
        created_by: r.get(8)?,
    })
}

/// The token with id `id`, live or not (sessions read it on every call).
pub(super) fn token_by_id(c: &Connection, id: &str) -> rusqlite::Result<Option<TokenRow>> {
    c.query_row(
        &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE id = ?1"),
        [id],
        token_row,
    )
    .optional()
}

/// What [`Store::add_token`] stores.
#[derive(Debug, Clone)]
pub struct NewTokenRow {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// BLAKE3 of the token, hex.
    pub hash: String,
    /// When it stops working, Unix seconds.
    pub expires: Option<i64>,
    /// Who made it.
    pub created_by: String,
}

impl Store {
    /// Stores a new API token, unless `max_live` live ones exist already (`None`).
    pub async fn add_token(
        &self,
        new: NewTokenRow,
        now_secs: i64,
        max_live: usize,
    ) -> Result<Option<TokenRow>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let live: i64 = tx.query_row(
                "SELECT COUNT(*) FROM api_tokens WHERE bootstrap = 0 AND revoked = 0
                 AND (expires IS NULL OR expires > ?1)",
                [now_secs],
                |r| r.get(0),
            )?;
            if usize::try_from(live).unwrap_or(usize::MAX) >= max_live {
                return Ok(None);
            }
            let id = new_id();
            tx.execute(
                "INSERT INTO api_tokens (id, name, role, token_hash, created, expires, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    new.name,
                    new.role.as_str(),
                    new.hash,
                    now(),
                    new.expires,
                    new.created_by
                ],
            )?;
            let row = token_by_id(&tx, &id)?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    /// Every API token, revoked and expired ones too, oldest first; never the bootstrap one.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {TOKEN_COLS} FROM api_tokens WHERE bootstrap = 0 ORDER BY created, id"
            ))?;
            let rows = stmt.query_map([], token_row)?.collect();
            rows
        })
        .await
    }

    /// The live token (bootstrap or API) whose hash is `hash`; this is a use of it, so its
    /// `last_used` is written when older than [`LAST_USED_EVERY`].
    pub async fn live_token(
        &self,
        hash: String,
        now_secs: i64,
    ) -> Result<Option<TokenRow>, StoreError> {
        self.call(move |c| {
            let row = c
                .query_row(
                    &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = ?1"),
                    [hash],
                    token_row,
                )
                .optional()?;
            let Some(mut row) = row.filter(|t| t.live(now_secs)) else {
                return Ok(None);
            };
            if row
                .last_used
                .is_none_or(|at| now_secs - at >= LAST_USED_EVERY)
            {
                c.execute(
                    "UPDATE api_tokens SET last_used = ?2 WHERE id = ?1",
                    params![row.id, now_secs],
                )?;
                row.last_used = Some(now_secs);
            }
            Ok(Some(row))
        })
        .await
    }

    /// Revokes API token `id` (the row stays, for the list) and ends the sessions made with it,
    /// in one transaction. `None` when there is no such API token (the bootstrap token is not
    /// one), else the sessions ended. Revoking twice is no error.
    pub async fn revoke_token(&self, id: String) -> Result<Option<usize>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let found: Option<String> = tx
                .query_row(
                    "UPDATE api_tokens SET revoked = 1 WHERE id = ?1 AND bootstrap = 0 RETURNING id",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?;
            if found.is_none() {
                return Ok(None);
            }
            let ended = tx.execute("DELETE FROM sessions WHERE token_id = ?1", [&id])?;
            tx.commit()?;
            Ok(Some(ended))
        })
        .await
    }

    /// Makes `hash` the bootstrap admin token's. When it differs from the stored one (a rotate,
    /// or a new `DATA/admin.token`), the sessions made with the old token end in the same
    /// transaction. Returns whether the token changed and the sessions ended.
    pub async fn set_bootstrap(&self, hash: String) -> Result<(bool, usize), StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let old: Option<String> = tx
                .query_row(
                    "SELECT token_hash FROM api_tokens WHERE id = ?1",
                    [BOOTSTRAP_ID],
                    |r| r.get(0),
                )
                .optional()?;
            if old.as_deref() == Some(hash.as_str()) {
                return Ok((false, 0));
            }
            tx.execute(
                "INSERT INTO api_tokens (id, name, role, token_hash, created, bootstrap)
                 VALUES (?1, 'admin token', 'admin', ?2, ?3, 1)
                 ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash,
                    created = excluded.created, last_used = NULL, revoked = 0",
                params![BOOTSTRAP_ID, hash, now()],
            )?;
            let ended = tx.execute("DELETE FROM sessions WHERE token_id = ?1", [BOOTSTRAP_ID])?;
            tx.commit()?;
            Ok((true, ended))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{Liveness, Via};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bifrost.db")).unwrap();
        (dir, store)
    }

    fn new(name: &str, hash: &str, expires: Option<i64>) -> NewTokenRow {
        NewTokenRow {
            name: name.into(),
            role: Role::Viewer,
            hash: hash.into(),
            expires,
            created_by: "alice".into(),
        }
    }

    fn live(now: i64) -> Liveness {
        Liveness {
            now,
            idle: 600,
            max: 3600,
            touch_every: Some(30),
        }
    }

    #[tokio::test]
    async fn tokens_are_found_by_hash_until_revoked_or_expired() {
        let (_dir, store) = open();
        let t = store
            .add_token(new("ci", "h1", None), 100, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((t.id.len(), t.role, t.last_used), (16, Role::Viewer, None));
        assert_eq!(t.created_by.as_deref(), Some("alice"));
        // The first use writes last_used; the next within a minute does not, a later one does.
        let used = store.live_token("h1".into(), 1000).await.unwrap().unwrap();
        assert_eq!(used.last_used, Some(1000));
        store.live_token("h1".into(), 1059).await.unwrap().unwrap();
        assert_eq!(store.tokens().await.unwrap()[0].last_used, Some(1000));
        store.live_token("h1".into(), 1060).await.unwrap().unwrap();
        assert_eq!(store.tokens().await.unwrap()[0].last_used, Some(1060));
        assert!(store
            .live_token("nope".into(), 1000)
            .await
            .unwrap()
            .is_none());

        // Expiry: live before the second it names, not at it.
        store
            .add_token(new("short", "h2", Some(2000)), 100, 10)
            .await
            .unwrap()
            .unwrap();
        assert!(store.live_token("h2".into(), 1999).await.unwrap().is_some());
        assert!(store.live_token("h2".into(), 2000).await.unwrap().is_none());

        // Revoking ends the token and its sessions, not others'; the row stays listed.
        store
            .create_session("s1".into(), "c".into(), Via::Token(t.id.clone()), live(100))
            .await
            .unwrap();
        assert!(store
            .session("s1".into(), live(101))
            .await
            .unwrap()
            .is_some());
        assert_eq!(store.revoke_token(t.id.clone()).await.unwrap(), Some(1));
        assert_eq!(store.revoke_token(t.id.clone()).await.unwrap(), Some(0));
        assert!(store
            .session("s1".into(), live(102))
            .await
            .unwrap()
            .is_none());
        assert!(store.live_token("h1".into(), 1100).await.unwrap().is_none());
        assert_eq!(
            store.revoke_token("0000000000000000".into()).await.unwrap(),
            None
        );
        let list = store.tokens().await.unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.iter().any(|r| r.id == t.id && r.revoked));
    }

    #[tokio::test]
    async fn a_session_ends_when_its_token_expires() {
        let (_dir, store) = open();
        let t = store
            .add_token(new("short", "h", Some(500)), 100, 10)
            .await
            .unwrap()
            .unwrap();
        store
            .create_session("s".into(), "c".into(), Via::Token(t.id), live(100))
            .await
            .unwrap();
        assert!(store
            .session("s".into(), live(499))
            .await
            .unwrap()
            .is_some());
        assert!(store
            .session("s".into(), live(500))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_bootstrap_token_is_imported_rotated_and_never_listed_or_revoked() {
        let (_dir, store) = open();
        assert_eq!(store.set_bootstrap("b1".into()).await.unwrap(), (true, 0));
        // The same file at the next start changes nothing.
        assert_eq!(store.set_bootstrap("b1".into()).await.unwrap(), (false, 0));
        let b = store.live_token("b1".into(), 100).await.unwrap().unwrap();
        assert!(b.bootstrap && b.role == Role::Admin && b.id == BOOTSTRAP_ID);
        assert!(store.tokens().await.unwrap().is_empty());
        assert_eq!(store.revoke_token(BOOTSTRAP_ID.into()).await.unwrap(), None);
        let other = store
            .add_token(new("ci", "h", None), 100, 10)
            .await
            .unwrap()
            .unwrap();
        let via = |id: &str| Via::Token(id.to_owned());
        for (s, id) in [
            ("s1", BOOTSTRAP_ID),
            ("s2", BOOTSTRAP_ID),
            ("s3", &other.id),
        ] {
            store
                .create_session(s.into(), "c".into(), via(id), live(100))
                .await
                .unwrap();
        }
        // Rotating ends the old token and its sessions at once; the API token's stay.
        assert_eq!(store.set_bootstrap("b2".into()).await.unwrap(), (true, 2));
        assert!(store.live_token("b1".into(), 101).await.unwrap().is_none());
        assert!(store.live_token("b2".into(), 101).await.unwrap().is_some());
        assert!(store
            .session("s1".into(), live(101))
            .await
            .unwrap()
            .is_none());
        assert!(store
            .session("s3".into(), live(101))
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn live_tokens_are_capped() {
        let (_dir, store) = open();
        for i in 0..2 {
            let row = new("t", &format!("h{i}"), None);
            assert!(store.add_token(row, 100, 2).await.unwrap().is_some());
        }
        assert!(store
            .add_token(new("t", "h2", None), 100, 2)
            .await
            .unwrap()
            .is_none());
        // Expired and revoked ones do not count.
        let first = store.tokens().await.unwrap().remove(0);
        store.revoke_token(first.id).await.unwrap();
        assert!(store
            .add_token(new("t", "h3", Some(150)), 100, 2)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .add_token(new("t", "h4", None), 200, 2)
            .await
            .unwrap()
            .is_some());
    }
}
