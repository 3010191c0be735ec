//! Wire and API types shared by the agent and Bifrost, with the protocol version and limits.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Version of the agent-to-Bifrost protocol; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Path of the HTTP/1.1 upgrade that turns a TLS connection into a tunnel.
pub const TUNNEL_PATH: &str = "/tunnel/v1";
/// Value of the `Upgrade` header on the tunnel request.
pub const TUNNEL_UPGRADE: &str = "mover-tunnel";

/// Headers of the tunnel upgrade request.
pub mod header {
    /// The connector key (32 lowercase hex).
    pub const KEY: &str = "x-mover-key";
    /// A key this agent used before `--reset-key`, which Bifrost retires.
    pub const PREVIOUS_KEY: &str = "x-mover-previous-key";
    /// `PROTOCOL_VERSION` of the agent.
    pub const PROTOCOL: &str = "x-mover-protocol";
    /// The agent's software version.
    pub const VERSION: &str = "x-mover-version";
    /// The agent's host name.
    pub const HOST: &str = "x-mover-host";
    /// The agent's OS and OS version.
    pub const OS: &str = "x-mover-os";
    /// On the `101` answer: Bifrost's [`super::SessionState`] for this key, as JSON.
    pub const SESSION: &str = "x-mover-session";
    /// On the `101` answer to a first tunnel: its id, for the extra lanes to name.
    pub const TUNNEL_ID: &str = "x-mover-tunnel-id";
    /// On the `101` answer to a first tunnel: how many extra lanes Bifrost accepts. A Bifrost
    /// that does not say takes none, so an agent never opens lanes it would mistake for a
    /// second agent with the same key.
    pub const LANES: &str = "x-mover-lanes";
    /// On a tunnel request: this connection is an extra lane of the tunnel with this id, so
    /// one agent's streams spread over several TCP connections (one connection's buffers cap
    /// the rate over a long round trip).
    pub const LANE_OF: &str = "x-mover-lane-of";
    /// On a whole-file read: trailer with the BLAKE3 (hex) of the whole file.
    pub const BLAKE3: &str = "x-mover-blake3";
    /// On a read with `subtree=1`: trailer with the BLAKE3 chaining value (hex) of the range,
    /// a subtree of the file's hash tree, so parts read in parallel prove the whole file.
    pub const SUBTREE_CV: &str = "x-mover-subtree-cv";
    /// On a read: the file's total size.
    pub const SIZE: &str = "x-mover-size";
    /// On a read: the file's modification time (RFC 3339, nanoseconds).
    pub const MODIFIED: &str = "x-mover-modified";
    /// Trailer set when a read could not be completed correctly (e.g. the file changed).
    pub const READ_ERROR: &str = "x-mover-read-error";
}

/// Requests Bifrost sends to the agent over the reversed HTTP/2 connection.
pub mod route {
    /// `GET`: [`AgentInfo`].
    pub const INFO: &str = "/v1/info";
    /// `POST` [`SessionState`]: Bifrost tells the agent whether it is authorized.
    pub const SESSION: &str = "/v1/session";
    /// `GET ?path=P[&cursor=C]`: [`BrowsePage`]. Every route taking `path` also takes
    /// `path_b64` (the path's exact bytes, base64) for paths that are not UTF-8.
    pub const BROWSE: &str = "/v1/browse";
    /// `GET ?path=P`: [`Entry`] of that path.
    pub const STAT: &str = "/v1/stat";
    /// `GET ?path=P` with optional `Range: bytes=N-`: the file's bytes.
    pub const READ: &str = "/v1/read";
    /// `POST` [`crate::many::ReadMany`]: several small files whole, one record each (see
    /// [`crate::many`]).
    pub const READ_MANY: &str = "/v1/read-many";
    /// `GET`: a long-lived stream of newline-delimited [`AgentEvent`].
    pub const EVENTS: &str = "/v1/events";
    /// `GET ?path=P`: [`FileHash`] of the whole file, read at the agent (nothing is sent).
    pub const HASH: &str = "/v1/hash";
    /// `POST` [`Watch`]: report changes under these folders as [`AgentEvent::Changed`].
    pub const WATCH: &str = "/v1/watch";
}

/// A file's content hash, for comparing by content instead of size and time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileHash {
    /// BLAKE3 of the whole file, hex.
    pub blake3: String,
    /// Size read.
    pub size: u64,
}

/// Entries per browse page: big enough to be cheap, small enough to bound memory.
pub const BROWSE_PAGE_SIZE: usize = 1000;
/// Longest path (in bytes) either side accepts in a request.
pub const MAX_PATH_BYTES: usize = 32 * 1024;
/// Largest JSON request body the agent accepts from Bifrost.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;
/// Time allowed for the TCP+TLS+upgrade handshake.
pub const HANDSHAKE_TIMEOUT_SECS: u64 = 20;

/// What the agent says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentInfo {
    /// Agent software version.
    pub version: String,
    /// Operating system and its version, e.g. `linux 12`.
    pub os: String,
    /// Host name of the agent's machine.
    pub host: String,
    /// Folders the agent shares; empty means everything its user can read.
    pub roots: Vec<String>,
}

/// Bifrost's view of this tunnel, pushed to the agent whenever it changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionState {
    /// The key is not authorized yet; nothing will be served.
    Waiting,
    /// The key is authorized as connector `name`.
    Authorized {
        /// Connector name chosen by the admin.
        name: String,
    },
    /// The admin revoked this key; Bifrost closes the tunnel next.
    Revoked,
    /// Another agent presented the same key; the newest tunnel wins and this one closes.
    Replaced,
}

/// Kind of a directory entry, as the API names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (not followed).
    Symlink,
    /// Device, FIFO, socket or anything else that is never read.
    Other,
}

/// One directory entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entry {
    /// File name (lossy UTF-8 when the real name is not UTF-8).
    pub name: String,
    /// The name's exact bytes, base64, only when they are not valid UTF-8 (Unix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_b64: Option<String>,
    /// What the entry is.
    pub kind: EntryKind,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Modification time, RFC 3339 in UTC with nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
}

/// One page of a folder listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrowsePage {
    /// Entries of this page, in the order the file system returns them.
    pub entries: Vec<Entry>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// An error body, the same shape on the tunnel and in the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Human-readable reason.
    pub error: String,
}

/// Events the agent pushes to Bifrost on the [`route::EVENTS`] stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    /// Sent first, and again whenever the shares change.
    Hello(AgentInfo),
    /// Sent periodically so an idle stream proves the agent is alive.
    Heartbeat,
    /// Content changed under these watched roots (see [`route::WATCH`]).
    Changed {
        /// The roots, as Bifrost named them.
        roots: Vec<String>,
    },
}

/// `POST` body of [`route::WATCH`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Watch {
    /// Folders to watch from now on (empty: stop watching).
    pub roots: Vec<String>,
}

pub mod accounts;
pub mod api;
pub mod audit;
pub mod destinations;
pub mod limits;
pub mod many;
pub mod settings;
pub mod tokens;
