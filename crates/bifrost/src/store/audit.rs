//! The audit trail in the database: one row per state change, appended and never changed.
//! Triggers refuse `UPDATE` and `DELETE` on the table, so not even a bug in Bifrost (or a SQL
//! statement slipped in through one) can rewrite history; only someone who can write the
//! database file itself can.

use mover_proto::audit::AuditRow;
use rusqlite::{params, Transaction};

use super::{Store, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT,
    addr TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
";

/// Creates the table and its guards.
pub(super) fn bring_up(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)
}

/// A row to append (its number and time are the store's).
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// Who.
    pub actor: String,
    /// Their role.
    pub role: Option<String>,
    /// From where.
    pub addr: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// More.
    pub detail: Option<String>,
}

/// Which rows to read; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// This actor exactly.
    pub actor: Option<String>,
    /// This action, or every action under it when it ends with `.` (`job.`).
    pub action: Option<String>,
    /// This target exactly.
    pub target: Option<String>,
    /// At or after, canonical RFC 3339 ([`second`]).
    pub since: Option<String>,
    /// At or before, canonical RFC 3339.
    pub until: Option<String>,
    /// Older than this row.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A time as the trail writes it: RFC 3339 in UTC to the second, so text order is time order.
pub fn second(t: time::OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Store {
    /// Appends a row.
    pub async fn audit(&self, e: AuditEvent) -> Result<(), StoreError> {
        let at = second(time::OffsetDateTime::now_utc());
        self.call(move |c| {
            c.execute(
                "INSERT INTO audit (at, actor, role, addr, action, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![at, e.actor, e.role, e.addr, e.action, e.target, e.detail],
            )
            .map(drop)
        })
        .await
    }

    /// Rows matching `f`, newest first.
    pub async fn audit_rows(&self, f: AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        self.call(move |c| {
            let (action, prefix) = match f.action {
                Some(a) if a.ends_with('.') => (None, Some(format!("{a}%"))),
                other => (other, None),
            };
            let mut st = c.prepare(
                "SELECT seq, at, actor, role, addr, action, target, detail FROM audit
                 WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2)
                   AND (?3 IS NULL OR action LIKE ?3 ESCAPE '\\') AND (?4 IS NULL OR target = ?4)
                   AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at <= ?6)
                   AND (?7 IS NULL OR seq < ?7)
                 ORDER BY seq DESC LIMIT ?8",
            )?;
            let prefix = prefix.map(|p| p.replace('_', "\\_"));
            let rows = st.query_map(
                params![f.actor, action, prefix, f.target, f.since, f.until, f.before, f.limit],
                |r| {
                    Ok(AuditRow {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        role: r.get(3)?,
                        addr: r.get(4)?,
                        action: r.get(5)?,
                        target: r.get(6)?,
                        detail: r.get(7)?,
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(actor: &str, action: &str, target: &str) -> AuditEvent {
        AuditEvent {
            actor: actor.into(),
            role: Some("admin".into()),
            addr: "127.0.0.1".into(),
            action: action.into(),
            target: Some(target.into()),
            detail: None,
        }
    }

    #[tokio::test]
    async fn rows_are_appended_filtered_and_never_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let store = Store::open(&path).unwrap();
        store.audit(event("ann", "job.create", "j1")).await.unwrap();
        store.audit(event("bob", "job.cancel", "j1")).await.unwrap();
        store
            .audit(event("ann", "connector.revoke", "c1"))
            .await
            .unwrap();
        let all = |f: AuditFilter| store.audit_rows(AuditFilter { limit: 100, ..f });
        let rows = all(AuditFilter::default()).await.unwrap();
        let seen: Vec<_> = rows.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(seen, ["connector.revoke", "job.cancel", "job.create"]);
        let jobs = all(AuditFilter {
            action: Some("job.".into()),
            ..Default::default()
        });
        assert_eq!(jobs.await.unwrap().len(), 2);
        let ann = all(AuditFilter {
            actor: Some("ann".into()),
            target: Some("j1".into()),
            ..Default::default()
        });
        assert_eq!(ann.await.unwrap().len(), 1);
        let older = all(AuditFilter {
            before: Some(rows[0].seq),
            ..Default::default()
        });
        assert_eq!(older.await.unwrap().len(), 2);
        let later = all(AuditFilter {
            since: Some("2999-01-01T00:00:00Z".into()),
            ..Default::default()
        });
        assert!(later.await.unwrap().is_empty());
        // `_` in a prefix is a character, not a wildcard.
        let none = all(AuditFilter {
            action: Some("job_.".into()),
            ..Default::default()
        });
        assert!(none.await.unwrap().is_empty());

        // No statement, through the store or past it, changes or removes a row.
        let c = rusqlite::Connection::open(&path).unwrap();
        let e = c
            .execute("UPDATE audit SET actor = 'mallory'", [])
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        let e = c.execute("DELETE FROM audit", []).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        drop(store);
        let store = Store::open(&path).unwrap();
        let rows = store
            .audit_rows(AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].actor, "ann");
    }

    #[test]
    fn times_are_canonical_seconds() {
        let t = time::macros::datetime!(2026-12-02 10:00:00.75 +02:00);
        assert_eq!(second(t), "2026-12-02T08:00:00Z");
    }
}
