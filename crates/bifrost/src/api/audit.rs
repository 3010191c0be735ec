//! `/api/v1/audit`: the audit trail, filtered, as JSON or CSV; and what handlers tell the
//! route guard about the changes they make, so that it can write each row.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json as Reply;
use mover_proto::audit::{AuditPage, AuditRow, DEFAULT_AUDIT_ROWS, MAX_AUDIT_ROWS};
use serde::Deserialize;

use super::table::{Access, Entry};
use super::{ApiError, Query};
use crate::store::{second, AuditFilter};
use crate::App;

/// What a handler adds to its answer for the audit row of its change: the new item's id (the
/// path's `{id}` otherwise), or a detail. Secrets never go here.
#[derive(Debug, Clone, Default)]
pub struct Audited {
    /// The item acted on.
    pub target: Option<String>,
    /// More about the change.
    pub detail: Option<String>,
}

impl Audited {
    /// The new item `id`.
    pub fn target(id: impl Into<String>) -> Self {
        Self {
            target: Some(id.into()),
            detail: None,
        }
    }

    /// With `detail`.
    pub fn detail(self, detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            ..self
        }
    }
}

/// The audit routes: admins only.
pub fn routes() -> Vec<Entry> {
    use utoipa_axum::routes;
    vec![
        Entry::new(Access::Admin, None, routes!(list)),
        Entry::new(Access::Admin, None, routes!(csv)),
    ]
}

/// Longest filter value accepted.
const MAX_FILTER_BYTES: usize = 1024;

/// Filters of the trail.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Rows of this actor.
    #[serde(default)]
    actor: Option<String>,
    /// Rows of this action, or of every action under it when it ends with `.` (`job.`).
    #[serde(default)]
    action: Option<String>,
    /// Rows about this id or name.
    #[serde(default)]
    target: Option<String>,
    /// At or after this time (RFC 3339).
    #[serde(default)]
    since: Option<String>,
    /// At or before this time (RFC 3339).
    #[serde(default)]
    until: Option<String>,
    /// Rows older than this `seq` (the `next_before` of the previous page).
    #[serde(default)]
    #[param(minimum = 1)]
    before: Option<i64>,
    /// At most this many rows (500 when not given, 10,000 at most).
    #[serde(default)]
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

fn time(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                .map(second)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "{name} must be an RFC 3339 time, e.g. 2026-12-01T09:00:00Z"
                    ))
                })
        })
        .transpose()
}

impl AuditQuery {
    fn filter(self) -> Result<AuditFilter, ApiError> {
        for (name, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
        ] {
            if v.as_ref().is_some_and(|v| v.len() > MAX_FILTER_BYTES) {
                return Err(ApiError::bad_request(format!(
                    "{name} is longer than {MAX_FILTER_BYTES} bytes"
                )));
            }
        }
        let limit = self.limit.unwrap_or(DEFAULT_AUDIT_ROWS);
        if !(1..=MAX_AUDIT_ROWS).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be 1 to {MAX_AUDIT_ROWS}"
            )));
        }
        if self.before.is_some_and(|b| b < 1) {
            return Err(ApiError::bad_request("before must be 1 or more"));
        }
        Ok(AuditFilter {
            actor: self.actor,
            action: self.action,
            target: self.target,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            before: self.before,
            limit,
        })
    }
}

/// `GET /api/v1/audit`: the trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Query(q): Query<AuditQuery>,
) -> Result<Reply<AuditPage>, ApiError> {
    let filter = q.filter()?;
    let limit = filter.limit as usize;
    let rows = app.store.audit_rows(filter).await?;
    let next_before = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    Ok(Reply(AuditPage { rows, next_before }))
}

/// `GET /api/v1/audit.csv`: the same rows as CSV.
#[utoipa::path(get, path = "/api/v1/audit.csv", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "The trail as CSV", content_type = "text/csv", body = String)))]
pub async fn csv(
    State(app): State<Arc<App>>,
    Query(q): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let rows = app.store.audit_rows(q.filter()?).await?;
    Ok((
        [
            (http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"bifrost-audit.csv\"",
            ),
        ],
        to_csv(&rows),
    ))
}

fn to_csv(rows: &[AuditRow]) -> String {
    use crate::jobs::csv_field as f;
    let mut out = String::from("seq,at,actor,role,addr,action,target,detail\r\n");
    for r in rows {
        let o = |v: &Option<String>| f(v.as_deref().unwrap_or_default());
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\r\n",
            r.seq,
            f(&r.at),
            f(&r.actor),
            o(&r.role),
            f(&r.addr),
            f(&r.action),
            o(&r.target),
            o(&r.detail)
        ));
    }
    out
}
