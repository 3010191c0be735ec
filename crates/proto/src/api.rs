//! JSON shapes of Bifrost's `/api/v1`, shared by Bifrost, tests and scripts.

use serde::{Deserialize, Serialize};

pub use crate::accounts::{Login, PasswordChange, Role, SessionInfo};

/// Connector state as the API lists it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    /// Authorized and its tunnel is up.
    Online,
    /// Authorized, no tunnel.
    Offline,
    /// A tunnel is up but its key is not authorized yet.
    Waiting,
}

/// `POST /api/v1/connectors` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The key the agent shows.
    pub key: String,
    /// Optional display name; defaults to the agent's host name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `PATCH /api/v1/connectors/{id}` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// New display name.
    pub name: String,
}

/// A connector as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Connector {
    /// Stable id (a waiting tunnel has a temporary one).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Online, offline or waiting.
    pub state: ConnectorState,
    /// Agent software version, when known.
    pub version: Option<String>,
    /// Agent OS, when known.
    pub os: Option<String>,
    /// Agent host name, when known.
    pub host: Option<String>,
    /// Shared roots the agent announced.
    #[serde(default)]
    pub roots: Vec<String>,
    /// Last time a tunnel was up (RFC 3339).
    pub last_seen: Option<String>,
    /// TCP connections of the live tunnel (the first and its extra lanes); 0 when offline.
    #[serde(default)]
    pub connections: usize,
}

/// Where a job writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Destination {
    /// A folder on Bifrost's machine.
    Folder {
        /// Absolute path of the folder.
        path: String,
    },
    /// A folder or prefix inside a destination stored in Bifrost (`/api/v1/destinations`).
    Stored {
        /// The stored destination's id.
        id: String,
        /// The folder or prefix inside it (`""` for its top).
        path: String,
    },
}

/// One source folder copied into its own destination folder (home-drives mode).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Absolute folder on the agent.
    pub source: String,
    /// Absolute folder at the destination that receives the source's contents.
    pub destination: String,
}

/// Which files a job takes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Glob patterns; when any are given, only files matching one are copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Glob patterns of files and folders left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Leave out files and folders whose names start with a dot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_hidden: bool,
    /// Only files modified at or after this time (RFC 3339, or a date `YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_after: Option<String>,
}

/// `POST /api/v1/jobs` body (and `/api/v1/jobs/preview`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// Connector id.
    pub connector: String,
    /// Absolute paths on the agent; each lands as a folder (or file) of its name in `destination`.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Where to copy.
    pub destination: Destination,
    /// Home-drives mode: each source folder's contents into its own folder, instead of `sources`.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Which files to take.
    #[serde(default)]
    pub filters: Filters,
    /// Files copied at once (default 8).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Most bytes per second the job reads from the agent, over all its files (none: no limit).
    #[serde(default)]
    pub bandwidth_limit: Option<u64>,
    /// On re-runs, remove from the destination the files deleted at the source (default: keep
    /// them and list them in the report).
    #[serde(default)]
    pub delete_removed: bool,
    /// How a file already at the destination is found unchanged.
    #[serde(default)]
    pub compare: Compare,
    /// Keep in sync until cut-over: once finished, the agent watches the sources and each
    /// change starts the next incremental pass (a re-run, which keeps this on).
    #[serde(default)]
    pub keep_in_sync: bool,
}

/// `POST /api/v1/jobs/{id}/sync` body: turn keep-in-sync on or off (off at cut-over).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// On or off.
    pub keep_in_sync: bool,
}

/// How a file already at the destination is found unchanged.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Same size and modification time (to the second): nothing is read.
    #[default]
    SizeMtime,
    /// Same BLAKE3: the agent reads the source and Bifrost the destination, when sizes match.
    Blake3,
}

/// What a job would copy (`POST /api/v1/jobs/preview`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preview {
    /// Files that would be copied.
    pub files: u64,
    /// Folders walked.
    pub folders: u64,
    /// Bytes that would be copied.
    pub bytes: u64,
    /// The first few files, as source paths.
    pub sample: Vec<String>,
}

/// `GET /api/v1/connectors/{id}/size?path=P`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FolderSize {
    /// Files below the folder.
    pub files: u64,
    /// Folders below the folder.
    pub folders: u64,
    /// Bytes of those files.
    pub bytes: u64,
}

/// Job state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Created, not started.
    Queued,
    /// Scanning or copying.
    Running,
    /// Stopped by an admin or by a full destination; resumable.
    Paused,
    /// Every file copied or skipped.
    Completed,
    /// Finished, with some files failed.
    CompletedWithErrors,
    /// Could not run at all (e.g. a source refused).
    Failed,
    /// Stopped for good by an admin.
    Cancelled,
}

impl JobState {
    /// The API's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
            JobState::CompletedWithErrors => "completed_with_errors",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses the API's name of the state.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "paused" => JobState::Paused,
            "completed" => JobState::Completed,
            "completed_with_errors" => JobState::CompletedWithErrors,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Whether the job will do no more work on its own.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::CompletedWithErrors
                | JobState::Failed
                | JobState::Cancelled
        )
    }
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Connector id.
    pub connector: String,
    /// Source paths on the agent.
    pub sources: Vec<String>,
    /// Destination.
    pub destination: Destination,
    /// Home-drives mappings, when the job uses them.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Which files the job takes.
    #[serde(default)]
    pub filters: Filters,
    /// Current state.
    pub state: JobState,
    /// Why the job is failed or paused, when it is.
    pub reason: Option<String>,
    /// Files found at the sources (grows while scanning).
    pub files_total: u64,
    /// Files copied.
    pub files_done: u64,
    /// Files failed.
    pub files_failed: u64,
    /// Files skipped (already at the destination, or not copyable).
    pub files_skipped: u64,
    /// Files of the re-run job that are gone from the source (not in `files_total`).
    #[serde(default)]
    pub files_deleted: u64,
    /// Bytes found at the sources.
    pub bytes_total: u64,
    /// Bytes copied or skipped.
    pub bytes_done: u64,
    /// Files copied at once.
    pub concurrency: u32,
    /// Most bytes per second the job reads (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_limit: Option<u64>,
    /// Re-runs remove files deleted at the source from the destination.
    #[serde(default)]
    pub delete_removed: bool,
    /// How a file already at the destination is found unchanged.
    #[serde(default)]
    pub compare: Compare,
    /// Changes at the source start the next incremental pass.
    #[serde(default)]
    pub keep_in_sync: bool,
    /// The job this one re-runs, if any.
    pub rerun_of: Option<String>,
    /// Who started it: an account or token name (none for jobs from before accounts).
    #[serde(default)]
    pub started_by: Option<String>,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Last change (RFC 3339).
    pub updated: String,
}

/// Per-file result.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Not done yet.
    Pending,
    /// Copied and verified.
    Copied,
    /// Could not be copied; see `reason`.
    Failed,
    /// Not copied on purpose; see `reason`.
    Skipped,
    /// In the job this one re-runs, but gone from the source now; `reason` says whether it was
    /// kept at the destination or removed.
    Deleted,
}

/// One line of a job's per-file report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileReport {
    /// Path on the agent.
    pub source: String,
    /// Path at the destination.
    pub destination: String,
    /// Size in bytes.
    pub size: u64,
    /// Status.
    pub status: FileStatus,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// What kind of failure it was, a label with few values that rewording `reason` does not
    /// change: `vanished`, `permission`, `locked`, `special_file`, `refused`, `changed`,
    /// `limit`, `checksum`, `link`, `disk_full`, `outside`, `destination`, `service`,
    /// `internal`, or `other` for a failure recorded by a Bifrost from before kinds. Set for
    /// failed files, and for deleted ones whose removal from the destination failed.
    #[serde(default)]
    pub kind: Option<String>,
    /// BLAKE3 of the copied file.
    pub blake3: Option<String>,
}

/// `GET /api/v1/jobs/{id}/files` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileReportPage {
    /// Report lines.
    pub files: Vec<FileReport>,
}
