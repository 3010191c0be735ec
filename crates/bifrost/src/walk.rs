//! Walking an agent's folders: what a job's sources become at the destination, and its filters.

use futures_util::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use mover_proto::api::{FileStatus, Filters};
use mover_proto::limits::{self, LimitError};
use mover_proto::{BrowsePage, Entry, EntryKind};

use crate::agent_client::{AgentClient, AgentError};
use crate::raw_path::RawPath;
use crate::store::{NewFile, StoreError};

pub use crate::layout::{targets, Target};

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

/// The compiled form of [`Filters`].
#[derive(Debug, Default)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    skip_hidden: bool,
    modified_after: Option<time::OffsetDateTime>,
}

fn glob_set(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p.trim()).map_err(|e| format!("pattern {p:?}: {e}"))?);
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

/// Parses RFC 3339, or a plain date (midnight UTC).
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    time::OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(s, &fmt)
            .ok()
            .map(|d| d.midnight().assume_utc())
    })
}

impl Filter {
    /// Compiles the filters; a bad pattern or date is a readable error.
    pub fn new(f: &Filters) -> Result<Self, String> {
        let modified_after = match &f.modified_after {
            Some(s) if !s.trim().is_empty() => Some(parse_time(s).ok_or_else(|| {
                format!("modified_after {s:?} is not a date (YYYY-MM-DD) or RFC 3339 time")
            })?),
            _ => None,
        };
        Ok(Self {
            include: glob_set(&f.include)?,
            exclude: glob_set(&f.exclude)?,
            skip_hidden: f.skip_hidden,
            modified_after,
        })
    }

    fn hidden(&self, name: &RawPath) -> bool {
        self.skip_hidden && name.0.first() == Some(&b'.')
    }

    fn excluded(&self, rel: &str, name: &str) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|g| g.is_match(rel) || g.is_match(name))
    }

    /// Whether to walk into a folder.
    fn takes_dir(&self, rel: &str, name: &RawPath) -> bool {
        !self.hidden(name) && !self.excluded(rel, &name.lossy())
    }

    /// Whether to copy a file.
    fn takes_file(&self, rel: &str, name: &RawPath, entry: &Entry) -> bool {
        let lossy = name.lossy();
        if self.hidden(name) || self.excluded(rel, &lossy) {
            return false;
        }
        if let Some(inc) = &self.include {
            if !(inc.is_match(rel) || inc.is_match(&lossy)) {
                return false;
            }
        }
        match (
            self.modified_after,
            entry.modified.as_deref().and_then(parse_time),
        ) {
            (Some(after), Some(m)) => m >= after,
            (Some(_), None) => false,
            _ => true,
        }
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
        let mut folders = Folders::new(Folder {
            dir: target.source.clone(),
            dest: target.dest.clone(),
            rel: String::new(),
            depth: 0,
            pages: 0,
            entries: 0,
        });
        loop {
            while pages.len() < PAGES_IN_FLIGHT {
                let Some(folder) = folders.pop() else { break };
                sink.folder();
                pages.push(fetch_page(client, folder, None));
            }
            let Some((mut folder, cursor, result)) = pages.next().await else {
                break;
            };
            folder.pages += 1;
            let page: BrowsePage = match result {
                Ok(_) if folder.pages > limits::MAX_PAGES_PER_FOLDER => {
                    sink.files(vec![failed_folder(&folder, LimitError::Pages.to_string())])
                        .await?;
                    continue;
                }
                Ok(page) => page,
                // A listing that breaks a limit fails its folder alone, whichever folder it is.
                Err(AgentError::Limit(e)) => {
                    sink.files(vec![failed_folder(&folder, e.to_string())])
                        .await?;
                    continue;
                }
                // A subfolder the agent may not list fails alone; the walk goes on.
                Err(AgentError::Status { status, message })
                    if status.is_client_error() && !folder.rel.is_empty() && cursor.is_none() =>
                {
                    let reason = format!("cannot list the folder: {message}");
                    sink.files(vec![failed_folder(&folder, reason)]).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
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
                let refused = if !name.is_safe_name(dir) {
                    Some(format!(
                        "agent sent an unsafe file name {:?} (empty, '.', '..' or with a separator)",
                        name.lossy()
                    ))
                } else if let Err(e) = limits::path(&src.0).and(limits::path(&to.0)) {
                    Some(e.to_string())
                } else if e.kind == EntryKind::Dir && folder.depth >= limits::MAX_DEPTH {
                    Some(LimitError::Depth.to_string())
                } else {
                    None
                };
                if let Some(reason) = refused {
                    files.push(NewFile {
                        source: src,
                        dest: to,
                        size: 0,
                        modified: None,
                        status: FileStatus::Failed,
                        reason: Some(reason),
                    });
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
                            let reason = format!(
                                "agent sent more folders than Bifrost holds at once ({} MiB of paths); copy this folder in a job of its own",
                                MAX_PENDING_BYTES >> 20
                            );
                            files.push(failed_folder(&sub, reason));
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

/// A folder that could not be walked, recorded as failed under its marker (a trailing `/`).
fn failed_folder(folder: &Folder, reason: String) -> NewFile {
    let mut marker = folder.dest.clone();
    marker.0.push(b'/');
    NewFile {
        source: folder.dir.clone(),
        dest: marker,
        size: 0,
        modified: None,
        status: FileStatus::Failed,
        reason: Some(reason),
    }
}

/// Folder pages asked for at once during a walk.
const PAGES_IN_FLIGHT: usize = 8;

/// Bytes of paths of the folders found and not yet listed: the walk goes depth first, so a
/// real tree keeps far fewer (a million folders waiting at once is ~200 MiB); an agent that
/// invents folders without end meets this instead of Bifrost's memory.
const MAX_PENDING_BYTES: usize = 256 << 20;

/// A folder to list: on the agent, at the destination, and relative to the target (for the
/// filters), with its depth below the target and the pages and entries listed so far.
struct Folder {
    dir: RawPath,
    dest: RawPath,
    rel: String,
    depth: usize,
    pages: u64,
    entries: u64,
}

impl Folder {
    fn bytes(&self) -> usize {
        self.dir.0.len() + self.dest.0.len() + self.rel.len()
    }
}

/// The folders waiting to be listed, bounded by [`MAX_PENDING_BYTES`].
struct Folders {
    waiting: Vec<Folder>,
    bytes: usize,
}

impl Folders {
    /// The folders of a walk, starting with its source (bounded by the job's checks).
    fn new(first: Folder) -> Self {
        Self {
            bytes: first.bytes(),
            waiting: vec![first],
        }
    }

    /// Adds a folder, or hands it back when the budget is spent.
    fn push(&mut self, folder: Folder) -> Result<(), Folder> {
        if self.bytes + folder.bytes() > MAX_PENDING_BYTES {
            return Err(folder);
        }
        self.bytes += folder.bytes();
        self.waiting.push(folder);
        Ok(())
    }

    fn pop(&mut self) -> Option<Folder> {
        let folder = self.waiting.pop()?;
        self.bytes -= folder.bytes();
        Some(folder)
    }
}

/// One page of `folder`, handed back with the folder and the cursor it was asked with.
async fn fetch_page(
    client: &AgentClient,
    folder: Folder,
    cursor: Option<String>,
) -> (Folder, Option<String>, Result<BrowsePage, AgentError>) {
    let result = client.browse(&folder.dir, cursor.as_deref()).await;
    (folder, cursor, result)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(modified: &str) -> Entry {
        Entry {
            name: "x".into(),
            name_b64: None,
            kind: EntryKind::File,
            size: 1,
            modified: Some(modified.into()),
        }
    }

    #[test]
    fn filters() {
        let f = Filter::new(&Filters {
            include: vec!["*.txt".into()],
            exclude: vec!["**/tmp/**".into(), "secret*".into()],
            skip_hidden: true,
            modified_after: Some("2026-01-01".into()),
        })
        .unwrap();
        let new = entry("2026-03-01T00:00:00Z");
        let old = entry("2025-12-31T23:59:59Z");
        let n = RawPath::new;
        assert!(f.takes_file("a/b.txt", &n("b.txt"), &new));
        assert!(!f.takes_file("a/b.txt", &n("b.txt"), &old));
        assert!(!f.takes_file("a/b.doc", &n("b.doc"), &new));
        assert!(!f.takes_file("a/.b.txt", &n(".b.txt"), &new));
        assert!(!f.takes_file("a/secret.txt", &n("secret.txt"), &new));
        assert!(!f.takes_file("x/tmp/b.txt", &n("b.txt"), &new));
        assert!(!f.takes_dir(".git", &n(".git")));
        assert!(f.takes_dir("docs", &n("docs")));
        assert!(Filter::new(&Filters {
            include: vec!["[".into()],
            ..Filters::default()
        })
        .is_err());
        assert!(Filter::new(&Filters {
            modified_after: Some("yesterday".into()),
            ..Filters::default()
        })
        .is_err());
    }
}
