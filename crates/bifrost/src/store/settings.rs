//! The settings table: one row per setting an admin changed, its value as JSON. A setting with
//! no row has its default, so a database from before this table needs no upgrade.

use rusqlite::{params, OptionalExtension};

use super::{now, Store, StoreError};

/// Made at every open (idempotent).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated TEXT NOT NULL
);
";

/// The key of the allowed destination roots (a JSON array of absolute paths).
const ALLOWED_ROOTS: &str = "allowed_roots";

impl Store {
    /// The allowed destination roots as stored (empty: none set). A value that is not a list
    /// of strings (a database edited by hand) is an error, not "none set": a broken setting
    /// must not open every folder.
    pub async fn allowed_roots(&self) -> Result<Vec<String>, StoreError> {
        self.call(|c| {
            let value: Option<String> = c
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    [ALLOWED_ROOTS],
                    |r| r.get(0),
                )
                .optional()?;
            match value {
                None => Ok(Vec::new()),
                Some(v) => serde_json::from_str(&v).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        format!("the setting {ALLOWED_ROOTS} is not a list of paths: {e}").into(),
                    )
                }),
            }
        })
        .await
    }

    /// Replaces the allowed destination roots (already checked); empty removes the setting.
    pub async fn set_allowed_roots(&self, roots: Vec<String>) -> Result<(), StoreError> {
        self.call(move |c| {
            if roots.is_empty() {
                c.execute("DELETE FROM settings WHERE key = ?1", [ALLOWED_ROOTS])?;
                return Ok(());
            }
            let value = serde_json::Value::from(roots).to_string();
            c.execute(
                "INSERT INTO settings (key, value, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                params![ALLOWED_ROOTS, value, now()],
            )
            .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn roots_are_kept_replaced_cleared_and_a_broken_value_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bifrost.db");
        let store = Store::open(&path).unwrap();
        assert!(store.allowed_roots().await.unwrap().is_empty());
        store
            .set_allowed_roots(vec!["/srv/a".into(), "/srv/b".into()])
            .await
            .unwrap();
        store
            .set_allowed_roots(vec!["/srv/c".into()])
            .await
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.allowed_roots().await.unwrap(), ["/srv/c"]);
        store.set_allowed_roots(Vec::new()).await.unwrap();
        assert!(store.allowed_roots().await.unwrap().is_empty());
        store
            .call(|c| {
                c.execute(
                    "INSERT INTO settings VALUES ('allowed_roots', '\"/srv\"', 'x')",
                    [],
                )
            })
            .await
            .unwrap();
        assert!(store.allowed_roots().await.is_err());
    }
}
