//! Why one file was not copied: a typed failure whose `kind()` labels metrics and reports, and
//! which says what the engine does next (fail, retry, read again, resume, or pause the job).

use http::StatusCode;

use crate::agent_client::AgentError;

/// What went wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// The file is gone from the source.
    #[error("vanished: the file no longer exists at the source")]
    Vanished,
    /// The agent refused to read it (permission, locked, a special file…): retrying will not help.
    #[error("{message}")]
    Refused {
        /// `permission`, `locked`, `special_file` or `refused`.
        kind: &'static str,
        /// The agent's own words.
        message: String,
    },
    /// The source changed while it was read: read again a few times, then reported.
    #[error("{0}")]
    Changed(String),
    /// The source is shorter than when it was listed.
    #[error("the file shrank at the source")]
    Shrank,
    /// The agent broke a protocol limit (see `mover_proto::limits`): it would again.
    #[error("{0}")]
    Limit(String),
    /// The agent sent more than it announced: nothing past the announced length was kept.
    #[error("{0}")]
    TooLong(String),
    /// What arrived does not hash to what the agent said.
    #[error("{0}")]
    Checksum(String),
    /// The link to the agent failed before this attempt moved the file forward.
    #[error("{0}")]
    Link(String),
    /// The link failed after this attempt moved the file forward, or the agent is stopping:
    /// resume later without counting an attempt (a flaky WAN must not fail a big file).
    #[error("{0}")]
    Interrupted(String),
    /// The destination is full: reported, and the job pauses.
    #[error("{0}")]
    DiskFull(String),
    /// A name or path that must not be written (outside the job's destination).
    #[error("{0}")]
    Outside(String),
    /// A file operation at a folder destination failed.
    #[error("{0}")]
    Local(String),
    /// An object store answered with an error (its status, when it sent one, and its message).
    #[error("{message}")]
    Service {
        /// The service's HTTP status.
        status: Option<u16>,
        /// What it said, as `STEP: MESSAGE`.
        message: String,
        /// Worth another attempt (a 5xx, a timeout, a dropped connection).
        transient: bool,
    },
    /// Something inside Bifrost failed (a task, the database): tried again.
    #[error("{0}")]
    Internal(String),
}

/// The kind of a failure recorded before failures carried one (a row of an older database):
/// reports and metrics call it this.
pub const UNRECORDED: &str = "other";

/// What the engine does with a failed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Report it failed now.
    Fail,
    /// Try again, up to the attempt limit.
    Retry,
    /// Read again, up to the changed-file limit.
    ReadAgain,
    /// Try again without counting an attempt.
    Resume,
    /// Report it failed and pause the job.
    Pause,
}

impl CopyError {
    /// The failure's class: a label with few values, for metrics and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            CopyError::Vanished => "vanished",
            CopyError::Refused { kind, .. } => kind,
            CopyError::Changed(_) | CopyError::Shrank => "changed",
            CopyError::Limit(_) | CopyError::TooLong(_) => "limit",
            CopyError::Checksum(_) => "checksum",
            CopyError::Link(_) | CopyError::Interrupted(_) => "link",
            CopyError::DiskFull(_) => "disk_full",
            CopyError::Outside(_) => "outside",
            CopyError::Local(_) => "destination",
            CopyError::Service { .. } => "service",
            CopyError::Internal(_) => "internal",
        }
    }

    /// What the engine does next.
    pub fn then(&self) -> Then {
        match self {
            CopyError::Vanished
            | CopyError::Refused { .. }
            | CopyError::Limit(_)
            | CopyError::Outside(_)
            | CopyError::Local(_) => Then::Fail,
            CopyError::Service { transient, .. } => {
                if *transient {
                    Then::Retry
                } else {
                    Then::Fail
                }
            }
            CopyError::Changed(_) => Then::ReadAgain,
            CopyError::Interrupted(_) => Then::Resume,
            CopyError::DiskFull(_) => Then::Pause,
            CopyError::Shrank
            | CopyError::TooLong(_)
            | CopyError::Checksum(_)
            | CopyError::Link(_)
            | CopyError::Internal(_) => Then::Retry,
        }
    }

    /// A task or the database failed underneath a copy.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        CopyError::Internal(e.to_string())
    }
}

/// What an agent's refusal or a failed request means for one file.
pub fn from_agent(e: AgentError) -> CopyError {
    match e {
        AgentError::Status {
            status: StatusCode::NOT_FOUND,
            ..
        } => CopyError::Vanished,
        // The agent is stopping: this file waits for it, without counting an attempt.
        AgentError::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
        } => CopyError::Interrupted(message),
        AgentError::Status {
            status: StatusCode::CONFLICT,
            message,
        } => CopyError::Changed(message),
        AgentError::Status {
            status: StatusCode::RANGE_NOT_SATISFIABLE,
            ..
        } => CopyError::Shrank,
        AgentError::Status { status, message } if status.is_client_error() => CopyError::Refused {
            kind: refusal_kind(&message),
            message,
        },
        // The same lie would come back on a retry.
        AgentError::Limit(e) => CopyError::Limit(e.to_string()),
        e => CopyError::Link(e.to_string()),
    }
}

/// The kind of an agent's 403. The protocol carries the agent's refusal as its words only
/// (`mover_agent::paths::PathError`), so its fixed phrases are matched here, once, where the
/// refusal arrives.
fn refusal_kind(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("permission denied") || m.contains("access is denied") {
        "permission"
    } else if m.contains("locked") || m.contains("being used by another process") {
        "locked"
    } else if m.contains("which is never read") {
        "special_file"
    } else {
        "refused"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> CopyError {
        from_agent(AgentError::Status {
            status: StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
            message: message.into(),
        })
    }

    #[test]
    fn agent_answers_map_to_kinds_and_next_steps() {
        let cases = [
            (404, "gone", "vanished", Then::Fail),
            (409, "changed during copy", "changed", Then::ReadAgain),
            (503, "the agent is stopping", "link", Then::Resume),
            (416, "", "changed", Then::Retry),
            (
                403,
                "path \"/a\": permission denied",
                "permission",
                Then::Fail,
            ),
            (
                403,
                "path \"/a\" is locked by another program",
                "locked",
                Then::Fail,
            ),
            (
                403,
                "path \"/a\" is a FIFO, which is never read",
                "special_file",
                Then::Fail,
            ),
            (400, "malformed path", "refused", Then::Fail),
        ];
        for (code, message, kind, then) in cases {
            let e = status(code, message);
            assert_eq!((e.kind(), e.then()), (kind, then), "{code} {message}");
        }
        let e = from_agent(AgentError::Protocol("reset".into()));
        assert_eq!((e.kind(), e.then()), ("link", Then::Retry));
    }

    #[test]
    fn service_errors_retry_only_when_transient() {
        let e = |transient| CopyError::Service {
            status: Some(503),
            message: "put part: slow down".into(),
            transient,
        };
        assert_eq!(e(true).then(), Then::Retry);
        assert_eq!(e(false).then(), Then::Fail);
        assert_eq!(e(false).to_string(), "put part: slow down");
    }
}
