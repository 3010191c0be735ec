//! Walking an agent's folders: what a job's sources become at the destination.
//!
//! The walk loop is here; `listing` holds it to the protocol's limits and says what a folder
//! or an entry that breaks them records, `filter` what a job takes.

mod filter;
mod listing;

use futures_util::StreamExt;
use mover_proto::api::FileStatus;
use mover_proto::{BrowsePage, Entry, EntryKind};

use crate::agent_client::{AgentClient, AgentError};
use crate::raw_path::RawPath;
use crate::store::{NewFile, StoreError};
use listing::{failed, failed_folder, fetch_page, page_of, refused, Folder, Folders};

pub use crate::layout::{targets, Target};
pub use filter::Filter;

/// Why a walk stopped.
#[derive(Debug)]
pub enum WalkError {
    /// The agent refused or failed.
    Agent(AgentError),
    /// The database failed.
    Store(StoreError),
}

impl From<AgentError> for WalkError {
    fn from(e: AgentError) -> Self {
        WalkError::Agent(e)
    }
}

impl From<StoreError> for WalkError {
    fn from(e: StoreError) -> Self {
        WalkError::Store(e)
    }
}

/// Receives what a walk finds.
pub trait Sink {
    /// A batch of files (one folder page).
    fn files(
        &mut self,
        files: Vec<NewFile>,
    ) -> impl std::future::Future<Output = Result<(), WalkError>> + Send;
    /// One more folder walked.
    fn folder(&mut self) {}
}

fn new_file(source: RawPath, dest: RawPath, entry: &Entry) -> NewFile {
    let (status, reason) = match entry.kind {
        EntryKind::File | EntryKind::Dir => (FileStatus::Pending, None),
        EntryKind::Symlink => (
            FileStatus::Skipped,
            Some("symbolic link (not followed)".to_owned()),
        ),
        EntryKind::Other => (
            FileStatus::Skipped,
            Some("device, FIFO or socket (never read)".to_owned()),
        ),
    };
    NewFile {
        source,
        dest,
        size: entry.size,
        modified: entry.modified.clone(),
        status,
        reason,
        kind: None,
    }
}

/// Walks every target through the agent, page by page, handing files to `sink`. What the agent
/// sends is held to `mover_proto::limits`: a folder whose listing breaks one fails alone, with
/// the reason, and costs no memory in proportion to the lie.
pub async fn walk<S: Sink>(
    client: &AgentClient,
    targets: &[Target],
    filter: &Filter,
    sink: &mut S,
) -> Result<(), WalkError> {
    for target in targets {
        let entry = client.stat(&target.source).await?;
        if entry.kind != EntryKind::Dir {
            // A file chosen by name is taken whatever the filters say.
            sink.files(vec![new_file(
                target.source.clone(),
                target.dest.clone(),
                &entry,
            )])
            .await?;
            continue;
        }
        // Pages of several folders are asked for at once: one at a time, a tree of many small
        // folders took a round trip per folder.
        let mut pages = futures_util::stream::FuturesUnordered::new();
        let mut folders = Folders::new(Folder::target(target.source.clone(), target.dest.clone()));
        loop {
            while pages.len() < listing::PAGES_IN_FLIGHT {
                let Some(folder) = folders.pop() else { break };
                sink.folder();
                pages.push(fetch_page(client, folder, None));
            }
            let Some((mut folder, cursor, result)) = pages.next().await else {
                break;
            };
            folder.pages += 1;
            let page: BrowsePage = match page_of(&folder, cursor.is_none(), result)? {
                Ok(page) => page,
                Err(e) => {
                    sink.files(vec![failed_folder(&folder, &e)]).await?;
                    continue;
                }
            };
            folder.entries += page.entries.len() as u64;
            let Folder { dir, dest, rel, .. } = &folder;
            if page.next_cursor.is_none() && folder.entries == 0 {
                // An empty folder is recorded as itself (a trailing `/`) so it is recreated;
                // only once its listing has ended, so a later page's failure is not hidden.
                let entry = Entry {
                    name: String::new(),
                    name_b64: None,
                    kind: EntryKind::Dir,
                    size: 0,
                    modified: None,
                };
                let mut marker = dest.clone();
                marker.0.push(b'/');
                sink.files(vec![new_file(dir.clone(), marker, &entry)])
                    .await?;
            }
            let mut files = Vec::with_capacity(page.entries.len());
            for e in &page.entries {
                // Names were bounded by the page check, so these paths are too.
                let name = RawPath::entry_name(e);
                let (src, to) = (dir.join(&name), dest.child(&name));
                if let Some(why) = refused(&folder, &name, &src, &to, e.kind == EntryKind::Dir) {
                    files.push(failed(src, to, &why));
                    continue;
                }
                let rel = if rel.is_empty() {
                    name.lossy()
                } else {
                    format!("{rel}/{}", name.lossy())
                };
                if e.kind == EntryKind::Dir {
                    if filter.takes_dir(&rel, &name) {
                        let sub = Folder {
                            dir: src,
                            dest: to,
                            rel,
                            depth: folder.depth + 1,
                            pages: 0,
                            entries: 0,
                        };
                        if let Err(sub) = folders.push(sub) {
                            files.push(failed_folder(&sub, &listing::too_many_folders()));
                        }
                    }
                } else if e.kind != EntryKind::File || filter.takes_file(&rel, &name, e) {
                    files.push(new_file(src, to, e));
                }
            }
            sink.files(files).await?;
            if let Some(next) = page.next_cursor {
                pages.push(fetch_page(client, folder, Some(next)));
            }
        }
    }
    Ok(())
}

/// Counts what a walk finds, keeping the first few paths.
#[derive(Debug, Default)]
pub struct Counter {
    /// Files to copy.
    pub files: u64,
    /// Folders walked.
    pub folders: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The first files' source paths.
    pub sample: Vec<String>,
}

impl Sink for Counter {
    async fn files(&mut self, files: Vec<NewFile>) -> Result<(), WalkError> {
        for f in files
            .into_iter()
            .filter(|f| f.status == FileStatus::Pending && !f.dest.0.ends_with(b"/"))
        {
            self.files += 1;
            self.bytes += f.size;
            if self.sample.len() < 100 {
                self.sample.push(f.source.lossy());
            }
        }
        Ok(())
    }

    fn folder(&mut self) {
        self.folders += 1;
    }
}
