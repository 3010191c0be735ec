//! The destinations table: named object-store destinations, their settings as plain JSON and
//! their credentials only as a sealed blob (`destinations::seal`).

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// Made at every open (idempotent).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS destinations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- Where the objects go (bucket, endpoint, ...), JSON, without credentials.
    place TEXT NOT NULL,
    prefix TEXT NOT NULL,
    -- The credentials, sealed with DATA/destinations.key and the id as associated data.
    sealed BLOB NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
";

/// A destination row as stored.
#[derive(Debug, Clone)]
pub struct DestinationRow {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `s3`, `azure_blob` or `gcs`.
    pub kind: String,
    /// Settings JSON (`destinations::model::Place`).
    pub place: String,
    /// Key prefix.
    pub prefix: String,
    /// Sealed credentials.
    pub sealed: Vec<u8>,
    /// Creation time.
    pub created: String,
    /// Last change.
    pub updated: String,
}

const COLS: &str = "id, name, kind, place, prefix, sealed, created, updated";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DestinationRow> {
    Ok(DestinationRow {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        place: r.get(3)?,
        prefix: r.get(4)?,
        sealed: r.get(5)?,
        created: r.get(6)?,
        updated: r.get(7)?,
    })
}

impl Store {
    /// Adds a destination.
    pub async fn insert_destination(&self, d: DestinationRow) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO destinations ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![d.id, d.name, d.kind, d.place, d.prefix, d.sealed, d.created, d.updated],
            )
            .map(drop)
        })
        .await
    }

    /// Replaces a destination's settings; false when there is none.
    pub async fn update_destination(&self, d: DestinationRow) -> Result<bool, StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE destinations SET name = ?2, kind = ?3, place = ?4, prefix = ?5, sealed = ?6, updated = ?7 WHERE id = ?1",
                params![d.id, d.name, d.kind, d.place, d.prefix, d.sealed, d.updated],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// The destination with this id.
    pub async fn destination(&self, id: String) -> Result<Option<DestinationRow>, StoreError> {
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {COLS} FROM destinations WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })
        .await
    }

    /// Every destination, oldest first.
    pub async fn destinations(&self) -> Result<Vec<DestinationRow>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLS} FROM destinations ORDER BY created, id"
            ))?;
            let rows = stmt.query_map([], row)?.collect();
            rows
        })
        .await
    }

    /// Removes a destination; false when there is none.
    pub async fn delete_destination(&self, id: String) -> Result<bool, StoreError> {
        self.call(move |c| {
            c.execute("DELETE FROM destinations WHERE id = ?1", [id])
                .map(|n| n > 0)
        })
        .await
    }
}
