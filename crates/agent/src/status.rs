//! The agent's status and activity feed, as the CLI, the desktop app and monitor show them.

use serde::{Deserialize, Serialize};

/// Why the tunnel is in the state it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "detail", rename_all = "snake_case")]
pub enum Detail {
    /// Starting up or dialing.
    Connecting,
    /// No Bifrost address is configured yet.
    NotConfigured,
    /// Tunnel up, Bifrost authorized the key as `name`.
    Authorized {
        /// Connector name at Bifrost.
        name: String,
    },
    /// Tunnel up, key not authorized yet.
    Waiting,
    /// The user ran `disconnect`.
    DisconnectedByUser,
    /// TCP to Bifrost failed.
    CannotReach {
        /// `HOST:PORT`.
        addr: String,
        /// The OS's reason.
        reason: String,
    },
    /// The proxy failed or refused.
    Proxy {
        /// The proxy's address.
        proxy: String,
        /// What happened.
        reason: String,
    },
    /// Bifrost's certificate did not pass the checks.
    CertificateRejected {
        /// What was wrong.
        reason: String,
    },
    /// Bifrost revoked the key.
    Revoked,
    /// Another agent with the same key connected, and Bifrost kept the newer tunnel.
    Replaced,
    /// Bifrost refused the tunnel for another reason, or the link broke.
    Failed {
        /// What happened.
        reason: String,
    },
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Detail::Connecting => f.write_str("connecting"),
            Detail::NotConfigured => {
                f.write_str("no Bifrost address configured (agent start --relay URL)")
            }
            Detail::Authorized { name } => write!(f, "authorized as {name}"),
            Detail::Waiting => f.write_str("waiting for authorization"),
            Detail::DisconnectedByUser => f.write_str("disconnected by user"),
            Detail::CannotReach { addr, reason } => write!(f, "cannot reach {addr}: {reason}"),
            Detail::Proxy { proxy, reason } => write!(f, "proxy {proxy}: {reason}"),
            Detail::CertificateRejected { reason } => write!(f, "certificate rejected: {reason}"),
            Detail::Revoked => f.write_str("revoked by Bifrost"),
            Detail::Replaced => {
                f.write_str("another agent with this key connected to Bifrost; this one steps back")
            }
            Detail::Failed { reason } => f.write_str(reason),
        }
    }
}

/// A snapshot of the agent's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Whether the tunnel to Bifrost is up.
    pub online: bool,
    /// Why.
    pub detail: Detail,
    /// Bifrost's host, when configured.
    pub relay_host: Option<String>,
    /// Bifrost's port, when configured.
    pub relay_port: Option<u16>,
}

impl Status {
    /// `online` or `offline`, as `status` prints it.
    pub fn word(&self) -> &'static str {
        if self.online {
            "online"
        } else {
            "offline"
        }
    }
}

/// One entry of the activity feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    /// Bifrost listed a folder.
    Browse {
        /// The folder.
        path: String,
    },
    /// Bifrost read a file.
    Upload {
        /// The file.
        path: String,
    },
    /// The status changed.
    State(Status),
    /// Files are being served: every few seconds while it lasts.
    Progress {
        /// Files being read now.
        reading: usize,
        /// Bytes sent since the agent started.
        sent: u64,
        /// Bytes per second over the last interval.
        rate: u64,
    },
}

/// Bytes in decimal units, as transfer tools show them.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl std::fmt::Display for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Activity::Browse { path } => write!(f, "Browse: {path}"),
            Activity::Upload { path } => write!(f, "Upload: {path}"),
            Activity::State(s) => write!(f, "Mover Agent Status: {} ({})", s.word(), s.detail),
            Activity::Progress {
                reading,
                sent,
                rate,
            } => write!(
                f,
                "Progress: reading {reading} file{}, {} sent, {}/s",
                if *reading == 1 { "" } else { "s" },
                human(*sent),
                human(*rate)
            ),
        }
    }
}
