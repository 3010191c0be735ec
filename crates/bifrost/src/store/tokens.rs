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
mod tests;
