//! The trial of an installed update, kept on disk so that any process can finish it: a release
//! runs from `.NAME.next` while the installed binary stays the old one, and only once it has
//! reported healthy is it renamed over the old. A release that crashes, hangs or is killed
//! before that, or whose judge is killed, is rolled back by whichever process of this binary
//! starts next: nothing it left behind ever runs by default.
//!
//! Steps, each durable before the next ([`Step`]); a `kill -9` after any of them leaves a
//! state [`recover`] finishes:
//!
//! | after        | on disk                                   | recovery            |
//! |--------------|-------------------------------------------|---------------------|
//! | `Locked`     | a staging folder, maybe                   | removes it          |
//! | `Staged`     | `.next`                                   | removes `.next`     |
//! | `PreviousKept` | `.next`, `.previous`                    | removes `.next`     |
//! | `TrialWritten` | + trial file, install still old         | rolls back          |
//! | `Promoted`   | install is new, trial file                | keeps it, finishes  |
//! | `Finished`   | install is new                            | nothing to do       |
//!
//! Liveness: every process taking part (the installer that judges, the release on trial) holds
//! a shared lock on `.NAME.update-lock`; recovery runs only when it can take that lock
//! exclusively, that is when nobody is left to finish the trial.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::swap::{self, Paths};

/// A point in an update where a crash may happen; reported to the observer of
/// [`Trial::begin_observed`], [`Trial::commit_observed`] and [`Trial::roll_back_observed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The update lock is held.
    Locked,
    /// The release sits at `.NAME.next`.
    Staged,
    /// The installed binary is kept as `.NAME.previous`.
    PreviousKept,
    /// The trial file is written: the release may now be started from `.next`.
    TrialWritten,
    /// The release was renamed over the installed binary.
    Promoted,
    /// The trial file is gone: the update is complete.
    Finished,
    /// Rollback: the installed binary is the old one again.
    Restored,
    /// Rollback: the version is recorded as rolled back.
    Recorded,
    /// Rollback: `.next` is gone.
    Discarded,
}

/// What the trial file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialState {
    /// The release on trial.
    pub version: String,
    /// The version it replaces.
    pub previous_version: String,
    /// BLAKE3 of the release's binary: tells it from the old one at the install path.
    pub new_hash: String,
    /// Seconds since the Unix epoch by which it must have reported healthy.
    pub deadline: u64,
}

/// What [`recover`] found and did.
#[derive(Debug)]
pub enum Recovered {
    /// No update in progress.
    Nothing,
    /// A trial nobody was finishing: its release is gone and the old binary stays.
    RolledBack(String),
    /// A release promoted just before a crash: its trial is finished.
    Completed(String),
    /// Another process takes part in a live trial; nothing was touched.
    Busy,
    /// This process is the release on trial: report health through the handle.
    Candidate(Trial),
    /// This process runs from `.next` but no trial expects it (it was rolled back).
    Abandoned,
}

/// A live trial, held by a process taking part in it (the lock is released on drop).
#[derive(Debug)]
pub struct Trial {
    paths: Paths,
    state: TrialState,
    _lock: File,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn open_lock(paths: &Paths) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(paths.lock())
}

fn read_state(paths: &Paths) -> io::Result<Option<TrialState>> {
    match std::fs::read(paths.trial()) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::other(format!("{}: {e}", paths.trial().display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Versions rolled back beside this binary, never to be installed again.
pub fn rolled_back(paths: &Paths) -> Vec<String> {
    std::fs::read_to_string(paths.rolled_back())
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn remember_rolled_back(paths: &Paths, version: &str) -> io::Result<()> {
    let mut versions = rolled_back(paths);
    if !versions.iter().any(|v| v == version) {
        versions.push(version.to_owned());
    }
    swap::write_atomic(
        &paths.rolled_back(),
        (versions.join("\n") + "\n").as_bytes(),
    )
}

/// A process's part in an update of one binary (a shared lock): while any party lives, no
/// other process finishes the update from the files on disk.
#[derive(Debug)]
pub struct Party {
    paths: Paths,
    lock: File,
}

/// Joins the update of the binary at `paths` before anything is written for it (the staging
/// folder included), so a crash at any later point is a dead party that recovery can see.
pub fn join(paths: &Paths) -> io::Result<Party> {
    let lock = open_lock(paths)?;
    lock.lock_shared()?;
    Ok(Party {
        paths: paths.clone(),
        lock,
    })
}

impl Trial {
    /// Installs `new_bin` (a verified binary in a staging folder beside the install) as a
    /// release on trial, without touching the installed binary; see [`Trial::begin_observed`].
    pub fn begin(party: Party, new_bin: &Path, state: TrialState) -> io::Result<Self> {
        Self::begin_observed(party, new_bin, state, &mut |_| {})
    }

    /// [`Trial::begin`], telling `observe` after each durable step (tests kill the process
    /// there).
    pub fn begin_observed(
        party: Party,
        new_bin: &Path,
        mut state: TrialState,
        observe: &mut dyn FnMut(Step),
    ) -> io::Result<Self> {
        let Party { paths, lock } = party;
        let paths = &paths;
        if read_state(paths)?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "another update of this binary is on trial",
            ));
        }
        swap::stage_next(paths, new_bin)?;
        observe(Step::Staged);
        swap::keep_previous(paths)?;
        observe(Step::PreviousKept);
        state.new_hash = swap::hash_file(&paths.next())?;
        swap::write_atomic(
            &paths.trial(),
            &serde_json::to_vec(&state).map_err(io::Error::other)?,
        )?;
        observe(Step::TrialWritten);
        Ok(Self {
            paths: paths.clone(),
            state,
            _lock: lock,
        })
    }

    /// The binary to start for the trial.
    pub fn candidate(&self) -> PathBuf {
        self.paths.next()
    }

    /// The installed binary's update files.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The version on trial.
    pub fn version(&self) -> &str {
        &self.state.version
    }

    /// The state on disk.
    pub fn state(&self) -> &TrialState {
        &self.state
    }

    /// How long the release has left to report healthy.
    pub fn remaining(&self) -> Duration {
        Duration::from_secs(self.state.deadline.saturating_sub(now()))
    }

    /// The release is healthy: it becomes the installed binary (one rename) and the trial
    /// ends. Safe to call from both the judge and the release, and again after a crash.
    pub fn commit(self) -> io::Result<()> {
        self.commit_observed(&mut |_| {})
    }

    /// [`Trial::commit`], telling `observe` after each durable step.
    pub fn commit_observed(self, observe: &mut dyn FnMut(Step)) -> io::Result<()> {
        swap::promote(&self.paths, &self.state.new_hash)?;
        observe(Step::Promoted);
        swap::remove_if_there(&self.paths.trial())?;
        swap::sync_dir(self.paths.dir()?)?;
        observe(Step::Finished);
        tracing::info!(version = %self.state.version, "update committed");
        Ok(())
    }

    /// The release failed: the old binary stays (or is put back), the release is removed and
    /// its version is never installed here again.
    pub fn roll_back(self) -> io::Result<()> {
        self.roll_back_observed(&mut |_| {})
    }

    /// [`Trial::roll_back`], telling `observe` after each durable step.
    pub fn roll_back_observed(self, observe: &mut dyn FnMut(Step)) -> io::Result<()> {
        roll_back_files(&self.paths, &self.state, true, observe)?;
        tracing::warn!(version = %self.state.version, "update rolled back");
        Ok(())
    }

    /// The trial was interrupted by a stop, not judged: the release is removed but may be
    /// offered again.
    pub fn abandon(self) -> io::Result<()> {
        if swap::hash_file(self.paths.install()).ok().as_deref() == Some(&self.state.new_hash) {
            // It had reported healthy and was promoted before the stop: keep it.
            return self.commit();
        }
        roll_back_files(&self.paths, &self.state, false, &mut |_| {})
    }
}

fn roll_back_files(
    paths: &Paths,
    state: &TrialState,
    record: bool,
    observe: &mut dyn FnMut(Step),
) -> io::Result<()> {
    // Promoted already (a judge that decided late): the kept binary goes back.
    if paths.install().exists() && swap::hash_file(paths.install())? == state.new_hash {
        swap::restore_previous(paths)?;
    } else if !paths.install().exists() {
        // Only Windows' two-step replace can leave no binary; `.previous` was kept first.
        swap::restore_previous(paths)?;
    }
    observe(Step::Restored);
    if record {
        remember_rolled_back(paths, &state.version)?;
    }
    observe(Step::Recorded);
    swap::remove_if_there(&paths.next())?;
    observe(Step::Discarded);
    swap::remove_if_there(&paths.trial())?;
    swap::sync_dir(paths.dir()?)?;
    observe(Step::Finished);
    Ok(())
}

/// Run first by every process of an updatable binary (`exe`, the running executable): joins
/// the trial when this process is the release on trial; otherwise, when nobody takes part in
/// an update any more, finishes it from what is on disk.
pub fn recover(exe: &Path) -> io::Result<Recovered> {
    let (paths, candidate) = swap::Paths::for_exe(exe);
    if !candidate && !paths.lock().exists() {
        // Never updated here (a package install, a first run): one stat, no lock.
        return Ok(Recovered::Nothing);
    }
    let lock = open_lock(&paths)?;
    if candidate {
        lock.lock_shared()?;
        return Ok(match read_state(&paths)? {
            Some(state) => Recovered::Candidate(Trial {
                paths,
                state,
                _lock: lock,
            }),
            None => Recovered::Abandoned,
        });
    }
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Recovered::Busy),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    remove_temporaries(&paths)?;
    let Some(state) = read_state(&paths)? else {
        // Killed after staging, before the trial was written: the release never ran.
        swap::remove_if_there(&paths.next())?;
        return Ok(Recovered::Nothing);
    };
    let promoted = paths.install().exists() && swap::hash_file(paths.install())? == state.new_hash;
    if promoted {
        // Promoted: it had reported healthy. Finish what the crash interrupted.
        swap::remove_if_there(&paths.next())?;
        swap::remove_if_there(&paths.trial())?;
        swap::sync_dir(paths.dir()?)?;
        tracing::info!(version = %state.version, "finished an interrupted update");
        return Ok(Recovered::Completed(state.version));
    }
    roll_back_files(&paths, &state, true, &mut |_| {})?;
    tracing::warn!(version = %state.version, "rolled back an update whose trial never finished");
    Ok(Recovered::RolledBack(state.version))
}

/// Removes what dead parties were writing: staging folders, half-written files.
fn remove_temporaries(paths: &Paths) -> io::Result<()> {
    let dir = paths.dir()?;
    let tmp_names = [
        paths.previous().with_extension("previous-tmp"),
        paths.previous().with_extension("restore-tmp"),
    ];
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(".mover-update-") && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else if name.starts_with(".mover-tmp-") || tmp_names.contains(&path) {
            swap::remove_if_there(&path)?;
        }
    }
    Ok(())
}
