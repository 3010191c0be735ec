//! Accounts and console sessions in the database: `users`, and `sessions` made by a user's
//! password or by a token (the bootstrap admin token or an API token, `store/tokens.rs`). The
//! `bifrost user` and `bifrost token` commands write here while Bifrost runs, and Bifrost reads
//! a session's row on every request, so a disabled or reset user's sessions, and a revoked or
//! rotated token's, end at once.

use rusqlite::{params, OptionalExtension, Transaction};

use super::tokens::{token_by_id, TokenRow};
use super::{new_id, now, Store, StoreError};
use crate::accounts::Role;

/// The tables.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    must_change INTEGER NOT NULL DEFAULT 1,
    created TEXT NOT NULL
);
-- user_id is NULL for a session made with a token (via = 'token'); token_id (added by
-- TOKEN_IDS) names that token.
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    via TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
";

/// Which token made a session, so that revoking or rotating it ends its sessions. Sessions of
/// the admin token from before are the bootstrap token's.
const TOKEN_IDS: &str = "
ALTER TABLE sessions ADD COLUMN token_id TEXT;
UPDATE sessions SET token_id = 'bootstrap' WHERE via = 'token';
";

/// Creates the tables. Sessions from before accounts (admin token only, no `via`) are dropped
/// once: everyone signs in again after the upgrade.
pub(super) fn bring_up(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let old: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions')
            AND NOT EXISTS (SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'via')",
        [],
        |r| r.get(0),
    )?;
    if old {
        tx.execute_batch("DROP TABLE sessions;")?;
    }
    tx.execute_batch(SCHEMA)?;
    let token_ids: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'token_id')",
        [],
        |r| r.get(0),
    )?;
    if !token_ids {
        tx.execute_batch(TOKEN_IDS)?;
    }
    tx.execute_batch("CREATE INDEX IF NOT EXISTS sessions_token ON sessions (token_id);")
}

/// An account, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Id.
    pub id: String,
    /// Name (unique regardless of case).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Disabled: cannot sign in.
    pub disabled: bool,
    /// Must choose a new password before anything else.
    pub must_change: bool,
    /// When it was added, RFC 3339.
    pub created: String,
}

const USER_COLS: &str = "id, name, role, disabled, must_change, created";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    user_row_at(r, 0)
}

/// A live console session (no `Debug`: the CSRF token stays out of logs).
#[derive(Clone)]
pub struct SessionRow {
    /// The CSRF token its state-changing calls carry.
    pub csrf: String,
    /// Its user, when it was made with a password.
    pub user: Option<UserRow>,
    /// Its token, when it was made with one (the bootstrap admin token or an API token).
    pub token: Option<TokenRow>,
}

/// What a session was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Account `id`'s password.
    Password(String),
    /// Token `id` (`tokens::BOOTSTRAP_ID` for the admin token).
    Token(String),
}

/// When a session counts as ended, and whether this look at it is a use (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// Now, Unix seconds.
    pub now: i64,
    /// Unused for longer than this: ended.
    pub idle: i64,
    /// Older than this: ended.
    pub max: i64,
    /// A use: `last_seen` is written when it is at least this old. `None`: only a look (the
    /// event stream, `GET /session`), which does not keep a session alive.
    pub touch_every: Option<i64>,
}

impl Store {
    /// Adds an account; `None` when the name is taken.
    pub async fn add_user(
        &self,
        name: String,
        role: Role,
        password_hash: String,
    ) -> Result<Option<UserRow>, StoreError> {
        self.call(move |c| {
            let id = new_id();
            let added = c.execute(
                "INSERT INTO users (id, name, role, password_hash, created) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
                params![id, name, role.as_str(), password_hash, now()],
            )?;
            if added == 0 {
                return Ok(None);
            }
            c.query_row(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"), [id], user_row)
                .optional()
        })
        .await
    }

    /// Every account, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY name"))?;
            let rows = stmt.query_map([], user_row)?.collect();
            rows
        })
        .await
    }

    /// The account named `name` (any case) and its password hash.
    pub async fn user_for_login(
        &self,
        name: String,
    ) -> Result<Option<(UserRow, String)>, StoreError> {
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLS}, password_hash FROM users WHERE name = ?1"),
                [name],
                |r| Ok((user_row(r)?, r.get(6)?)),
            )
            .optional()
        })
        .await
    }

    /// The password hash of account `id`, if it is there and enabled.
    pub async fn password_hash(&self, id: String) -> Result<Option<String>, StoreError> {
        self.call(move |c| {
            c.query_row(
                "SELECT password_hash FROM users WHERE id = ?1 AND disabled = 0",
                [id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Disables (or enables) account `name`; disabling ends its sessions in the same
    /// transaction. `None` when there is no such account, else the sessions ended.
    pub async fn set_disabled(
        &self,
        name: String,
        disabled: bool,
    ) -> Result<Option<usize>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let id: Option<String> = tx
                .query_row(
                    "UPDATE users SET disabled = ?2 WHERE name = ?1 RETURNING id",
                    params![name, disabled],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            let ended = if disabled {
                tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?
            } else {
                0
            };
            tx.commit()?;
            Ok(Some(ended))
        })
        .await
    }

    /// Gives account `name` a new one-time password (it must change it at the next sign-in)
    /// and ends its sessions. `None` when there is no such account, else the sessions ended.
    pub async fn reset_password(
        &self,
        name: String,
        password_hash: String,
    ) -> Result<Option<usize>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let id: Option<String> = tx
                .query_row(
                    "UPDATE users SET password_hash = ?2, must_change = 1 WHERE name = ?1 RETURNING id",
                    params![name, password_hash],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            let ended = tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            tx.commit()?;
            Ok(Some(ended))
        })
        .await
    }

    /// Stores the password account `id` chose, and ends its sessions but `keep` (the one that
    /// changed it): whoever else held one knew the old password.
    pub async fn set_password(
        &self,
        id: String,
        password_hash: String,
        keep: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE users SET password_hash = ?2, must_change = 0 WHERE id = ?1",
                params![id, password_hash],
            )?;
            tx.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND token_hash IS NOT ?2",
                params![id, keep],
            )?;
            tx.commit()
        })
        .await
    }

    /// Stores a console session by the hash of its cookie, made `via` a password or a token,
    /// dropping ended ones.
    pub async fn create_session(
        &self,
        token_hash: String,
        csrf: String,
        via: Via,
        live: Liveness,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "DELETE FROM sessions WHERE expires < ?1 OR last_seen < ?1 - ?2",
                params![live.now, live.idle],
            )?;
            let (kind, user, token) = match via {
                Via::Password(user) => ("password", Some(user), None),
                Via::Token(token) => ("token", None, Some(token)),
            };
            c.execute(
                "INSERT INTO sessions (token_hash, csrf, user_id, token_id, via, created, last_seen, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
                params![token_hash, csrf, user, token, kind, live.now, live.now + live.max],
            )
            .map(drop)
        })
        .await
    }

    /// The live session with this cookie hash. One unused for longer than `live.idle`, older
    /// than `live.max`, of a disabled user, or of a token that no longer works (expired,
    /// revoked, rotated) has ended: it is deleted, and `None` returned.
    pub async fn session(
        &self,
        token_hash: String,
        live: Liveness,
    ) -> Result<Option<SessionRow>, StoreError> {
        self.call(move |c| {
            let row = c
                .query_row(
                    &format!(
                        "SELECT s.csrf, s.created, s.last_seen, s.token_id, s.user_id, u.{}
                         FROM sessions s LEFT JOIN users u ON u.id = s.user_id
                         WHERE s.token_hash = ?1",
                        USER_COLS.replace(", ", ", u.")
                    ),
                    [&token_hash],
                    |r| {
                        let user_id: Option<String> = r.get(4)?;
                        let user = match user_id {
                            Some(_) => Some(user_row_at(r, 5)?),
                            None => None,
                        };
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            user,
                        ))
                    },
                )
                .optional()?;
            let Some((csrf, created, last_seen, token_id, user)) = row else {
                return Ok(None);
            };
            let token = match &token_id {
                Some(id) => token_by_id(c, id)?,
                None => None,
            };
            let ended = live.now - last_seen > live.idle
                || live.now - created > live.max
                || user.as_ref().is_some_and(|u| u.disabled)
                || (token_id.is_some() && !token.as_ref().is_some_and(|t| t.live(live.now)))
                // Neither an account's nor a token's: nothing vouches for it.
                || (user.is_none() && token.is_none());
            if ended {
                c.execute("DELETE FROM sessions WHERE token_hash = ?1", [&token_hash])?;
                return Ok(None);
            }
            if live
                .touch_every
                .is_some_and(|every| live.now - last_seen >= every)
            {
                c.execute(
                    "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1",
                    params![token_hash, live.now],
                )?;
            }
            Ok(Some(SessionRow { csrf, user, token }))
        })
        .await
    }

    /// Ends a console session.
    pub async fn delete_session(&self, token_hash: String) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
                .map(drop)
        })
        .await
    }
}

/// [`user_row`] over the columns starting at `at`.
fn user_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<UserRow> {
    let role: String = r.get(at + 2)?;
    Ok(UserRow {
        id: r.get(at)?,
        name: r.get(at + 1)?,
        // A role this Bifrost does not know (written by a newer one) gets the least.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        disabled: r.get(at + 3)?,
        must_change: r.get(at + 4)?,
        created: r.get(at + 5)?,
    })
}
