//! The multipart journal in Bifrost's database: each upload's id and every part the service
//! took, so a Bifrost killed mid-file completes the upload with the parts it has (object_store
//! cannot list an upload's parts: this journal is the truth), and abandoned uploads are aborted.

use std::collections::BTreeMap;

use object_store::multipart::PartId;
use rusqlite::{params, OptionalExtension};

use crate::failure::CopyError;
use crate::store::Store;

/// The journal's tables, made when the database is opened.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS object_uploads (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    destination TEXT NOT NULL,
    key TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    modified TEXT NOT NULL,
    part_size INTEGER NOT NULL,
    UNIQUE (job, key)
);
CREATE TABLE IF NOT EXISTS object_parts (
    upload INTEGER NOT NULL REFERENCES object_uploads(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    len INTEGER NOT NULL,
    cv TEXT NOT NULL,
    content_id TEXT NOT NULL,
    PRIMARY KEY (upload, start)
);
";

/// An upload begun for a version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    /// The row.
    pub row: i64,
    /// The service's upload id.
    pub upload_id: String,
    /// The part size it was begun with.
    pub part_size: u64,
}

/// A part the service took.
#[derive(Debug, Clone)]
pub struct Part {
    /// Its chaining value.
    pub cv: [u8; 32],
    /// What completes it.
    pub id: PartId,
}

/// An upload left behind by a job: `(row, key, upload id)`.
pub type Left = (i64, String, String);

fn internal(e: impl std::fmt::Display) -> CopyError {
    CopyError::internal(format!("multipart journal: {e}"))
}

/// The journal of one job's uploads into one destination.
#[derive(Clone)]
pub struct Journal {
    /// The database.
    pub store: Store,
    /// The job.
    pub job: String,
    /// The destination's id.
    pub destination: String,
}

impl Journal {
    /// The upload begun for `key`, if one was: `(upload, size, modified)`.
    pub async fn find(&self, key: &str) -> Result<Option<(Begun, u64, String)>, CopyError> {
        let (job, key) = (self.job.clone(), key.to_owned());
        self.store
            .call(move |c| {
                c.query_row(
                    "SELECT id, upload_id, part_size, size, modified FROM object_uploads
                     WHERE job = ?1 AND key = ?2",
                    params![job, key],
                    |r| {
                        Ok((
                            Begun {
                                row: r.get(0)?,
                                upload_id: r.get(1)?,
                                part_size: r.get::<_, i64>(2)? as u64,
                            },
                            r.get::<_, i64>(3)? as u64,
                            r.get(4)?,
                        ))
                    },
                )
                .optional()
            })
            .await
            .map_err(internal)
    }

    /// The parts an upload has, by start.
    pub async fn parts(&self, row: i64) -> Result<BTreeMap<u64, Part>, CopyError> {
        let rows = self
            .store
            .call(move |c| {
                let mut q =
                    c.prepare("SELECT start, cv, content_id FROM object_parts WHERE upload = ?1")?;
                let rows = q.query_map([row], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<(u64, String, String)>>>()
            })
            .await
            .map_err(internal)?;
        Ok(rows
            .into_iter()
            .filter_map(|(start, cv, content_id)| {
                let cv = crate::tree::parse_cv(&cv)?;
                Some((
                    start,
                    Part {
                        cv,
                        id: PartId { content_id },
                    },
                ))
            })
            .collect())
    }

    /// Records a new upload for `key`, replacing any older one (already aborted).
    pub async fn begin(
        &self,
        key: &str,
        upload_id: &str,
        (size, modified, part_size): (u64, &str, u64),
    ) -> Result<Begun, CopyError> {
        let (job, dest, key, id, modified) = (
            self.job.clone(),
            self.destination.clone(),
            key.to_owned(),
            upload_id.to_owned(),
            modified.to_owned(),
        );
        let upload_id = id.clone();
        let row = self
            .store
            .call(move |c| {
                c.execute(
                    "DELETE FROM object_uploads WHERE job = ?1 AND key = ?2",
                    params![job, key],
                )?;
                c.execute(
                    "INSERT INTO object_uploads (job, destination, key, upload_id, size, modified, part_size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![job, dest, key, id, size as i64, modified, part_size as i64],
                )?;
                Ok(c.last_insert_rowid())
            })
            .await
            .map_err(internal)?;
        Ok(Begun {
            row,
            upload_id,
            part_size,
        })
    }

    /// Records a part the service took.
    pub async fn part(
        &self,
        row: i64,
        (start, len): (u64, u64),
        part: &Part,
    ) -> Result<(), CopyError> {
        let cv: String = part.cv.iter().map(|b| format!("{b:02x}")).collect();
        let content_id = part.id.content_id.clone();
        self.store
            .call(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO object_parts (upload, start, len, cv, content_id)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![row, start as i64, len as i64, cv, content_id],
                )
            })
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// Forgets an upload (completed or aborted).
    pub async fn end(&self, row: i64) -> Result<(), CopyError> {
        self.store
            .call(move |c| c.execute("DELETE FROM object_uploads WHERE id = ?1", [row]))
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// The uploads this job left open in this destination.
    pub async fn left(&self) -> Result<Vec<Left>, CopyError> {
        let (job, dest) = (self.job.clone(), self.destination.clone());
        self.store
            .call(move |c| {
                let mut q = c.prepare(
                    "SELECT id, key, upload_id FROM object_uploads WHERE job = ?1 AND destination = ?2",
                )?;
                let rows = q.query_map(params![job, dest], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect()
            })
            .await
            .map_err(internal)
    }
}
