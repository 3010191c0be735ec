//! Walking an agent's folders: what a job's sources become at the destination, and its filters.

use futures_util::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use mover_proto::api::{Destination, FileStatus, Filters, Mapping};
use mover_proto::{route, BrowsePage, Entry, EntryKind};

use crate::agent_client::{AgentClient, AgentError};
use crate::raw_path::RawPath;
use crate::store::{NewFile, StoreError};

/// One source and the destination path it becomes.
#[derive(Debug, Clone)]
pub struct Target {
    /// Path on the agent.
    pub source: RawPath,
    /// Absolute path at the destination: the copied file, or the folder receiving the contents.
    pub dest: RawPath,
}

/// Each source lands as `destination/NAME`; with mappings, each mapped folder's contents land
/// in its own destination folder.
pub fn targets(sources: &[String], destination: &Destination, mappings: &[Mapping]) -> Vec<Target> {
    if !mappings.is_empty() {
        return mappings
            .iter()
            .map(|m| Target {
                source: RawPath::new(&m.source),
                dest: RawPath::new(&m.destination),
            })
            .collect();
    }
    let Destination::Folder { path } = destination;
    let root = RawPath::new(path.trim_end_matches('/'));
    sources
        .iter()
        .map(|s| {
            let source = RawPath::new(s);
            let dest = root.child(&source.base_name());
            Target { source, dest }
        })
        .collect()
}

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

/// Walks every target through the agent, page by page, handing files to `sink`.
pub async fn walk<S: Sink>(
    client: &AgentClient,
    targets: &[Target],
    filter: &Filter,
    sink: &mut S,
) -> Result<(), WalkError> {
    for target in targets {
        let entry: Entry = client
            .get_json(route::STAT, &[target.source.query_pair()])
            .await?;
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
        let mut folders = vec![Folder {
            dir: target.source.clone(),
            dest: target.dest.clone(),
            rel: String::new(),
        }];
        loop {
            while pages.len() < PAGES_IN_FLIGHT {
                let Some(folder) = folders.pop() else { break };
                sink.folder();
                pages.push(fetch_page(client, folder, None));
            }
            let Some((folder, cursor, result)) = pages.next().await else {
                break;
            };
            let page: BrowsePage = match result {
                Ok(page) => page,
                // A subfolder the agent may not list fails alone; the walk goes on.
                Err(AgentError::Status { status, message })
                    if status.is_client_error() && !folder.rel.is_empty() && cursor.is_none() =>
                {
                    let mut marker = folder.dest.clone();
                    marker.0.push(b'/');
                    sink.files(vec![NewFile {
                        source: folder.dir.clone(),
                        dest: marker,
                        size: 0,
                        modified: None,
                        status: FileStatus::Failed,
                        reason: Some(format!("cannot list the folder: {message}")),
                    }])
                    .await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let Folder { dir, dest, rel } = &folder;
            if cursor.is_none() && page.entries.is_empty() {
                // An empty folder is recorded as itself (a trailing `/`) so it is recreated.
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
                let name = RawPath::entry_name(e);
                let (src, to) = (dir.join(&name), dest.child(&name));
                let rel = if rel.is_empty() {
                    name.lossy()
                } else {
                    format!("{rel}/{}", name.lossy())
                };
                if !name.is_safe_name() {
                    files.push(NewFile {
                        source: src,
                        dest: to,
                        size: e.size,
                        modified: None,
                        status: FileStatus::Failed,
                        reason: Some("unsafe file name from the agent".into()),
                    });
                } else if e.kind == EntryKind::Dir {
                    if filter.takes_dir(&rel, &name) {
                        folders.push(Folder {
                            dir: src,
                            dest: to,
                            rel,
                        });
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

/// Folder pages asked for at once during a walk.
const PAGES_IN_FLIGHT: usize = 8;

/// A folder to list: on the agent, at the destination, and relative to the target (for the
/// filters).
struct Folder {
    dir: RawPath,
    dest: RawPath,
    rel: String,
}

/// One page of `folder`, handed back with the folder and the cursor it was asked with.
async fn fetch_page(
    client: &AgentClient,
    folder: Folder,
    cursor: Option<String>,
) -> (Folder, Option<String>, Result<BrowsePage, AgentError>) {
    let mut pairs = vec![folder.dir.query_pair()];
    if let Some(c) = cursor.as_deref() {
        pairs.push(("cursor", c.to_owned()));
    }
    let result = client.get_json(route::BROWSE, &pairs).await;
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

    #[test]
    fn targets_follow_the_layout() {
        let d = Destination::Folder {
            path: "/dest/".into(),
        };
        let t = targets(&["/srv/share/Finance".into()], &d, &[]);
        assert_eq!(t[0].dest, RawPath::new("/dest/Finance"));
        let m = vec![Mapping {
            source: "/home/alice".into(),
            destination: "/users/a.smith".into(),
        }];
        let t = targets(&[], &d, &m);
        assert_eq!(
            (t[0].source.clone(), t[0].dest.clone()),
            (RawPath::new("/home/alice"), RawPath::new("/users/a.smith"))
        );
    }
}
