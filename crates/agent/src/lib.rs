//! The Mover agent runtime: key, tunnel, reconnect, browse/read service, control channel.
#![forbid(unsafe_code)]

pub mod bufpool;
pub mod config;
pub mod control;
pub mod delta;
pub mod fsops;
pub mod home;
pub mod key;
pub mod live_config;
pub mod logging;
pub mod many;
pub mod paths;
#[cfg(unix)]
pub mod private_socket;
pub mod proxy;
pub mod runtime;
pub mod service;
pub mod status;
pub mod tls;
pub mod tunnel;
pub mod update;

pub use config::Config;
pub use home::AgentHome;
pub use key::ConnectorKey;
pub use runtime::{prepare_key, Agent, StartError};
pub use status::{Activity, Detail, Status};

/// The agent's version: the package's, unless the build stamps another through `MOVER_VERSION`
/// (`scripts/package --version`, and the update tests, build a "next" version that way).
pub const VERSION: &str = match option_env!("MOVER_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// `OS OS-VERSION`, as `agent -v` prints it.
pub fn os_description() -> String {
    format!("{} {}", std::env::consts::OS, os_info::get().version())
}
