//! Listing an agent's folders within `mover_proto::limits`: the folders waiting, their pages,
//! and what an entry or a listing that breaks a limit, or is refused, records instead.

use mover_proto::api::FileStatus;
use mover_proto::limits::{self, LimitError};
use mover_proto::BrowsePage;

use crate::agent_client::{AgentClient, AgentError};
use crate::failure::{self, CopyError};
use crate::raw_path::RawPath;
use crate::store::NewFile;

/// Folder pages asked for at once during a walk.
pub(super) const PAGES_IN_FLIGHT: usize = 8;

/// Bytes of paths of the folders found and not yet listed: the walk goes depth first, so a
/// real tree keeps far fewer (a million folders waiting at once is ~200 MiB); an agent that
/// invents folders without end meets this instead of Bifrost's memory.
const MAX_PENDING_BYTES: usize = 256 << 20;

/// A folder to list: on the agent, at the destination, and relative to the target (for the
/// filters), with its depth below the target and the pages and entries listed so far.
pub(super) struct Folder {
    pub(super) dir: RawPath,
    pub(super) dest: RawPath,
    pub(super) rel: String,
    pub(super) depth: usize,
    pub(super) pages: u64,
    pub(super) entries: u64,
}

impl Folder {
    /// A target's own folder, where its walk starts.
    pub(super) fn target(dir: RawPath, dest: RawPath) -> Self {
        Self {
            dir,
            dest,
            rel: String::new(),
            depth: 0,
            pages: 0,
            entries: 0,
        }
    }

    fn bytes(&self) -> usize {
        self.dir.0.len() + self.dest.0.len() + self.rel.len()
    }
}

/// The folders waiting to be listed, bounded by [`MAX_PENDING_BYTES`].
pub(super) struct Folders {
    waiting: Vec<Folder>,
    bytes: usize,
}

impl Folders {
    /// The folders of a walk, starting with its source (bounded by the job's checks).
    pub(super) fn new(first: Folder) -> Self {
        Self {
            bytes: first.bytes(),
            waiting: vec![first],
        }
    }

    /// Adds a folder, or hands it back when the budget is spent (see [`too_many_folders`]).
    pub(super) fn push(&mut self, folder: Folder) -> Result<(), Folder> {
        if self.bytes + folder.bytes() > MAX_PENDING_BYTES {
            return Err(folder);
        }
        self.bytes += folder.bytes();
        self.waiting.push(folder);
        Ok(())
    }

    pub(super) fn pop(&mut self) -> Option<Folder> {
        let folder = self.waiting.pop()?;
        self.bytes -= folder.bytes();
        Some(folder)
    }
}

/// Why a folder the budget had no room for fails.
pub(super) fn too_many_folders() -> CopyError {
    CopyError::Limit(format!(
        "agent sent more folders than Bifrost holds at once ({} MiB of paths); copy this folder in a job of its own",
        MAX_PENDING_BYTES >> 20
    ))
}

/// One page of `folder`, handed back with the folder and the cursor it was asked with.
pub(super) async fn fetch_page(
    client: &AgentClient,
    folder: Folder,
    cursor: Option<String>,
) -> (Folder, Option<String>, Result<BrowsePage, AgentError>) {
    let result = client.browse(&folder.dir, cursor.as_deref()).await;
    (folder, cursor, result)
}

/// What a page of `folder` means: its entries, the failure its folder records instead (the
/// walk goes on), or the agent's error that stops the walk.
pub(super) fn page_of(
    folder: &Folder,
    first: bool,
    result: Result<BrowsePage, AgentError>,
) -> Result<Result<BrowsePage, CopyError>, AgentError> {
    match result {
        Ok(_) if folder.pages > limits::MAX_PAGES_PER_FOLDER => {
            Ok(Err(CopyError::Limit(LimitError::Pages.to_string())))
        }
        Ok(page) => Ok(Ok(page)),
        // A listing that breaks a limit fails its folder alone, whichever folder it is.
        Err(AgentError::Limit(e)) => Ok(Err(CopyError::Limit(e.to_string()))),
        // A subfolder the agent may not list fails alone, as permission, vanished… tell; the
        // walk goes on. A target the agent may not list fails the job.
        Err(AgentError::Status { status, message })
            if status.is_client_error() && !folder.rel.is_empty() && first =>
        {
            Ok(Err(failure::from_agent(AgentError::Status {
                status,
                message: format!("cannot list the folder: {message}"),
            })))
        }
        Err(e) => Err(e),
    }
}

/// Why an entry `name` of `folder`, found at `src` and going to `to`, is not taken, if it is
/// not: a name that would leave its folder, a path past the protocol's limits, or a folder
/// too deep. Limits the agent broke, so the entry fails alone.
pub(super) fn refused(
    folder: &Folder,
    name: &RawPath,
    src: &RawPath,
    to: &RawPath,
    is_dir: bool,
) -> Option<CopyError> {
    if !name.is_safe_name(&folder.dir) {
        Some(CopyError::Limit(format!(
            "agent sent an unsafe file name {:?} (empty, '.', '..' or with a separator)",
            name.lossy()
        )))
    } else if let Err(e) = limits::path(&src.0).and(limits::path(&to.0)) {
        Some(CopyError::Limit(e.to_string()))
    } else if is_dir && folder.depth >= limits::MAX_DEPTH {
        Some(CopyError::Limit(LimitError::Depth.to_string()))
    } else {
        None
    }
}

/// An entry that failed before it was copied, with its failure's reason and kind.
pub(super) fn failed(source: RawPath, dest: RawPath, e: &CopyError) -> NewFile {
    NewFile {
        source,
        dest,
        size: 0,
        modified: None,
        status: FileStatus::Failed,
        reason: Some(e.to_string()),
        kind: Some(e.kind()),
    }
}

/// A folder that could not be walked, recorded as failed under its marker (a trailing `/`).
pub(super) fn failed_folder(folder: &Folder, e: &CopyError) -> NewFile {
    let mut marker = folder.dest.clone();
    marker.0.push(b'/');
    failed(folder.dir.clone(), marker, e)
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn share() -> Folder {
        Folder::target(RawPath::new("/share"), RawPath::new("share"))
    }

    #[test]
    fn an_unsafe_name_fails_as_a_limit() {
        let folder = share();
        let name = RawPath::new("..");
        let (src, to) = (folder.dir.join(&name), folder.dest.child(&name));
        let e = refused(&folder, &name, &src, &to, false).expect("refused");
        let f = failed(src, to, &e);
        assert_eq!((f.status, f.kind), (FileStatus::Failed, Some("limit")));
        assert!(f.reason.unwrap_or_default().contains("unsafe file name"));

        let name = RawPath::new("ok");
        let (src, to) = (folder.dir.join(&name), folder.dest.child(&name));
        assert!(refused(&folder, &name, &src, &to, true).is_none());
        let deep = Folder {
            depth: limits::MAX_DEPTH,
            ..share()
        };
        let e = refused(&deep, &name, &src, &to, true).expect("too deep");
        assert_eq!(e.kind(), "limit");
    }

    #[test]
    fn a_subfolder_that_cannot_be_listed_fails_by_the_agents_kind() {
        let sub = Folder {
            rel: "sub".into(),
            ..share()
        };
        let refusal = |status: StatusCode, message: &str| {
            Err(AgentError::Status {
                status,
                message: message.into(),
            })
        };
        let kind = |folder: &Folder, first, result| {
            page_of(folder, first, result).map(|page| page.err().map(|e| e.kind()))
        };
        let denied = || {
            refusal(
                StatusCode::FORBIDDEN,
                "path \"/share/sub\": permission denied",
            )
        };
        assert_eq!(kind(&sub, true, denied()).ok(), Some(Some("permission")));
        assert_eq!(
            kind(&sub, true, refusal(StatusCode::NOT_FOUND, "gone")).ok(),
            Some(Some("vanished"))
        );
        let f = failed_folder(
            &sub,
            &page_of(&sub, true, denied())
                .ok()
                .and_then(Result::err)
                .expect("failed"),
        );
        assert!(f
            .reason
            .unwrap_or_default()
            .starts_with("cannot list the folder: "));
        assert_eq!(f.dest.lossy(), "share/");
        // The target itself, or a later page, stops the walk.
        assert!(kind(&share(), true, denied()).is_err());
        assert!(kind(&sub, false, denied()).is_err());
        let lie = Err(AgentError::Limit(LimitError::Depth));
        assert_eq!(kind(&share(), false, lie).ok(), Some(Some("limit")));
    }
}
