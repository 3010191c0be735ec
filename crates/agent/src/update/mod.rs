//! Signed self-update: reads a release feed, decides whether a release may be installed, and
//! installs it only after its zipsign (ed25519) signature checks out against the embedded keys,
//! as a release on trial that replaces the installed binary only once it has proved healthy
//! (`trial.rs`, with the file steps in `swap.rs`; the feed's rules in `feed.rs`).
//!
//! The feed is a JSON document (schema 1 of `self_update`'s manifest, plus `minimum_version`):
//!
//! ```json
//! { "schema": 1, "minimum_version": "0.1.0",
//!   "releases": [ { "version": "0.2.0", "assets": [
//!     { "name": "mover-agent-desktop-0.2.0-x86_64-unknown-linux-gnu.tar.gz",
//!       "url": "mover-agent-desktop-0.2.0-x86_64-unknown-linux-gnu.tar.gz" } ] } ] }
//! ```
//!
//! An asset's name is `PRODUCT-VERSION-TARGET.tar.gz` exactly (`.zip` for Windows targets). zipsign binds the signature to the
//! file name, so a signed archive of an old version cannot be offered under a newer version's name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;

mod feed;
mod fetch;
pub mod swap;
pub mod trial;

pub use feed::{
    asset_name, decide, install_kind, resolve, Decision, Feed, FeedAsset, FeedRelease, InstallKind,
    Offer,
};
use fetch::get;
pub use self_update::VerifyingKey;
pub use swap::Paths;
pub use trial::{recover, Recovered, Step, Trial, TrialState};

/// How often a running agent or app looks for an update.
pub const CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// How long a new release has, from its install, to report healthy (connected to Bifrost).
pub const TRIAL: Duration = Duration::from_secs(60);
/// Largest feed document accepted.
const FEED_LIMIT: usize = 1 << 20;
/// Largest archive accepted.
const ARCHIVE_LIMIT: usize = 512 << 20;

/// The release keys this build accepts; two during a key rotation. The private half never
/// enters the repository (see the README's release section).
pub const RELEASE_KEYS: &[VerifyingKey] = &[*include_bytes!(
    "../../release-keys/mover-release-2026-11.pub"
)];

/// Why an update check or install did not complete.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The feed could not be fetched or read.
    #[error("update feed {url}: {reason}")]
    Feed {
        /// The feed's address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The archive could not be downloaded.
    #[error("download of {url}: {reason}")]
    Download {
        /// The archive's address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The release was refused; nothing was replaced.
    #[error("release {version} refused: {reason}")]
    Refused {
        /// The release's version.
        version: String,
        /// Why.
        reason: String,
    },
    /// The configured extra release keys cannot be read.
    #[error("update keys: {0}")]
    Keys(String),
    /// Installing failed; the installed binary is as it was.
    #[error("cannot install into {path}: {reason}")]
    Install {
        /// The install path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// What an update check did.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing to install.
    UpToDate,
    /// A package manager owns the files.
    Managed,
    /// A newer version waits for the running transfer to end.
    Waiting(String),
    /// This release is installed on trial: start [`Trial::candidate`], then commit or roll
    /// back.
    Installed(Trial),
}

/// Checks a feed and installs a newer release of one binary.
#[derive(Debug, Clone)]
pub struct Updater {
    /// The feed's address.
    pub feed_url: String,
    /// The product (binary) name, as in asset names.
    pub product: String,
    /// The target triple, as in asset names.
    pub target: String,
    /// The running version.
    pub current_version: String,
    /// The binary to replace.
    pub install_path: PathBuf,
    /// The binary's path inside the archive.
    pub path_in_archive: String,
    /// Accepted signing keys; never empty.
    pub keys: Vec<VerifyingKey>,
    /// Trust settings: a feed on the Bifrost the agent uses is trusted as the tunnel trusts it.
    pub config: Config,
    /// Versions not to install again (they were rolled back).
    pub skip_versions: Vec<String>,
}

impl Updater {
    /// An updater for the running executable, trusting the built-in release keys and the
    /// config's `update_keys`.
    pub fn for_current_exe(
        feed_url: &str,
        product: &str,
        path_in_archive: &str,
        config: Config,
    ) -> Result<Self, UpdateError> {
        let exe = std::env::current_exe().map_err(|e| UpdateError::Install {
            path: "the running executable".into(),
            reason: e.to_string(),
        })?;
        // A release on trial runs from `.NAME.next`; it updates the installed binary.
        let paths = Paths::for_exe(&exe).0;
        let mut keys = RELEASE_KEYS.to_vec();
        keys.extend(
            config
                .extra_update_keys()
                .map_err(|e| UpdateError::Keys(e.to_string()))?,
        );
        Ok(Self {
            feed_url: feed_url.to_owned(),
            product: product.to_owned(),
            target: self_update::get_target().to_owned(),
            current_version: crate::VERSION.to_owned(),
            install_path: paths.install().to_owned(),
            path_in_archive: path_in_archive.to_owned(),
            keys,
            config,
            skip_versions: trial::rolled_back(&paths),
        })
    }

    /// Fetches the feed, decides, and installs a newer release; `transferring` is asked just
    /// before the download and again before the binary is replaced.
    pub async fn run(&self, transferring: impl Fn() -> bool) -> Result<Outcome, UpdateError> {
        let kind = install_kind(&self.install_path);
        if kind == InstallKind::Package {
            return Ok(Outcome::Managed);
        }
        let feed_err = |reason: String| UpdateError::Feed {
            url: self.feed_url.clone(),
            reason,
        };
        let body = get(&self.feed_url, &self.config, FEED_LIMIT)
            .await
            .map_err(feed_err)?;
        let mut feed = Feed::parse(&body).map_err(feed_err)?;
        feed.releases
            .retain(|r| !self.skip_versions.contains(&r.version));
        let offer = match decide(
            &self.current_version,
            &feed,
            &self.product,
            &self.target,
            transferring(),
            &kind,
        ) {
            Decision::UpToDate => return Ok(Outcome::UpToDate),
            Decision::Managed => return Ok(Outcome::Managed),
            Decision::WaitForTransfer(o) => return Ok(Outcome::Waiting(o.version)),
            Decision::Refuse { version, reason } => {
                return Err(UpdateError::Refused { version, reason })
            }
            Decision::Install(o) => o,
        };
        let url = resolve(&self.feed_url, &offer.url);
        tracing::info!(version = %offer.version, %url, "downloading an update");
        let archive = get(&url, &self.config, ARCHIVE_LIMIT)
            .await
            .map_err(|reason| UpdateError::Download {
                url: url.clone(),
                reason,
            })?;
        if transferring() {
            return Ok(Outcome::Waiting(offer.version));
        }
        let this = self.clone();
        let version = offer.version.clone();
        let trial = tokio::task::spawn_blocking(move || this.install(&offer, &archive))
            .await
            .map_err(|e| UpdateError::Install {
                path: self.install_path.display().to_string(),
                reason: e.to_string(),
            })??;
        tracing::info!(%version, path = %self.install_path.display(), "update installed on trial");
        Ok(Outcome::Installed(trial))
    }

    /// Verifies `archive` and installs its binary on trial beside the installed one, which is
    /// kept as `.NAME.previous` and stays in place until the trial is committed.
    pub fn install(&self, offer: &Offer, archive: &[u8]) -> Result<Trial, UpdateError> {
        self.install_observed(offer, archive, &mut |_| {})
    }

    /// [`Updater::install`], telling `observe` after each durable step of the trial's start.
    pub fn install_observed(
        &self,
        offer: &Offer,
        archive: &[u8],
        observe: &mut dyn FnMut(Step),
    ) -> Result<Trial, UpdateError> {
        let refused = |reason: String| UpdateError::Refused {
            version: offer.version.clone(),
            reason,
        };
        let install_err = |reason: String| UpdateError::Install {
            path: self.install_path.display().to_string(),
            reason,
        };
        // `self_update` treats an empty key list as "nothing to verify": never let that happen.
        if self.keys.is_empty() {
            return Err(refused(
                "this build has no release keys to verify with".into(),
            ));
        }
        let dir = self
            .install_path
            .parent()
            .ok_or_else(|| install_err("has no parent folder".into()))?;
        let paths = Paths::of(&self.install_path);
        let party = trial::join(&paths).map_err(|e| install_err(e.to_string()))?;
        observe(Step::Locked);
        // Staged beside the binary, so every later step is a rename on one filesystem.
        let staging = tempfile::Builder::new()
            .prefix(".mover-update-")
            .tempdir_in(dir)
            .map_err(|e| install_err(e.to_string()))?;
        let archive_path = staging.path().join(&offer.asset_name);
        std::fs::write(&archive_path, archive).map_err(|e| install_err(e.to_string()))?;
        self_update::verify_signature(&archive_path, &self.keys)
            .map_err(|e| refused(format!("signature check failed: {e}")))?;
        let unpacked = staging.path().join("unpacked");
        std::fs::create_dir(&unpacked).map_err(|e| install_err(e.to_string()))?;
        self_update::Extract::from_source(&archive_path)
            .extract_file(&unpacked, &self.path_in_archive)
            .map_err(|e| refused(format!("the archive has no {}: {e}", self.path_in_archive)))?;
        // Extraction keeps the entry's folders (`moveragent/agent` lands in `moveragent/`).
        let new_bin = unpacked.join(&self.path_in_archive);
        if !new_bin.is_file() {
            return Err(refused(format!(
                "the archive's {} is not a file",
                self.path_in_archive
            )));
        }
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + TRIAL.as_secs();
        let state = TrialState {
            version: offer.version.clone(),
            previous_version: self.current_version.clone(),
            new_hash: String::new(),
            deadline,
        };
        Trial::begin_observed(party, &new_bin, state, observe)
            .map_err(|e| install_err(e.to_string()))
    }
}

/// Where the binary replaced by an update is kept (for a rollback).
pub fn previous_path(install_path: &Path) -> PathBuf {
    Paths::of(install_path).previous()
}

/// How a release on trial ended, judged by [`prove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It reconnected to Bifrost in time and is now the installed binary.
    Kept(String),
    /// It did not; the previous binary stays installed and this version is not tried again.
    RolledBack(String),
}

/// Run by a release on trial (the CLI agent and the desktop app alike): waits for `agent` to
/// reconnect to Bifrost until the trial's deadline, then commits the release or rolls it back.
/// Either is also done, from the files on disk, by the next process if this one dies first.
pub async fn prove(agent: &crate::Agent, trial: Trial) -> std::io::Result<Verdict> {
    let version = trial.version().to_owned();
    let mut status = agent.watch_status();
    let online = tokio::time::timeout(trial.remaining(), status.wait_for(|s| s.online))
        .await
        .is_ok_and(|r| r.is_ok());
    let done = tokio::task::spawn_blocking(move || {
        if online {
            trial.commit()
        } else {
            trial.roll_back()
        }
    })
    .await
    .map_err(std::io::Error::other)?;
    done?;
    Ok(if online {
        Verdict::Kept(version)
    } else {
        Verdict::RolledBack(version)
    })
}
