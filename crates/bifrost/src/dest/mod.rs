//! Where copies land: the `Destination` trait every kind implements (plan, begin, put, commit,
//! abort), what each kind can carry, and the journal entry a verified copy makes before it is
//! published.
//!
//! The engine reads and verifies; a destination only stores. A copy's bytes take one of two
//! ways: small files arrive whole and are put in batches (`put_whole`, one commit for many), and
//! bigger ones are written as they stream (`begin`, `writer`/`write`/`written` per stream or
//! part, then `commit` or `abort`).

pub mod folder;
pub mod object;

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;

use crate::failure::CopyError;
use crate::raw_path::RawPath;

/// An RFC 3339 time as agents send it.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// What a kind of destination can carry and check.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Runs of zeros are stored as holes.
    pub sparse: bool,
    /// Keeps the source's modification time as the file's own.
    pub mtime: bool,
    /// Keeps empty folders.
    pub empty_folders: bool,
    /// Stores names that are not UTF-8 as they are.
    pub non_utf8_names: bool,
    /// What the destination itself verifies, beyond Bifrost's BLAKE3.
    pub checksum: &'static str,
    /// A streamed file interrupted mid-way resumes at the byte (else at the part).
    pub resume_at_byte: bool,
    /// Files up to this size arrive whole and are put in one step.
    pub whole_max: u64,
}

/// What is at a destination name now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// A file (not a folder or link).
    pub is_file: bool,
    /// Bytes.
    pub size: u64,
    /// The source's modification time it records, Unix seconds.
    pub modified: Option<i64>,
    /// The BLAKE3 it records, hex, where the kind keeps one.
    pub blake3: Option<String>,
}

impl Existing {
    /// Whether it is a file of this size and modification time (to the second).
    pub fn same(&self, size: u64, modified: Option<&str>) -> bool {
        let Some(m) = modified.and_then(parse_time) else {
            return false;
        };
        self.is_file && self.size == size && self.modified == Some(m.unix_timestamp())
    }
}

/// A verified file that arrived whole.
#[derive(Debug, Clone)]
pub struct Whole {
    /// Its number within the job, for the journal.
    pub seq: i64,
    /// Where it goes.
    pub dest: RawPath,
    /// Its bytes.
    pub content: Bytes,
    /// Their BLAKE3, hex.
    pub blake3: String,
    /// The source's modification time.
    pub modified: Option<time::OffsetDateTime>,
}

/// A big file verified whole.
#[derive(Debug, Clone)]
pub struct Done {
    /// Its number within the job, for the journal.
    pub seq: i64,
    /// Bytes.
    pub size: u64,
    /// BLAKE3, hex.
    pub blake3: String,
    /// The source's modification time.
    pub modified: Option<time::OffsetDateTime>,
}

/// How a big file travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One read from the first byte not yet written to the end.
    Stream,
    /// Parts `(start, len)` along the BLAKE3 tree, each read and verified on its own.
    Parts(Vec<(u64, u64)>),
}

/// Where a begun file stands.
pub enum Resume {
    /// Nothing of it is kept.
    Fresh,
    /// A stream kept `offset` bytes, hashed into `hasher`.
    At {
        /// Bytes kept.
        offset: u64,
        /// Their hash so far.
        hasher: Box<blake3::Hasher>,
    },
    /// These parts are kept (start to chaining value).
    Parts(BTreeMap<u64, [u8; 32]>),
}

/// What became of a file deleted at the source, at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// Removed.
    Removed,
    /// Already gone.
    Gone,
    /// A folder that still holds other files: kept.
    NotEmpty,
}

/// The journal entry a verified copy makes before it is published, so a Bifrost that dies
/// between the two counts the copy as done when it finds it in place.
pub struct Journal {
    /// The database.
    pub store: crate::store::Store,
    /// The job.
    pub job: String,
}

impl Journal {
    /// Records `files` (seq, BLAKE3) as verified and about to be published.
    pub async fn verified(&self, files: Vec<(i64, String)>) -> Result<(), CopyError> {
        self.store
            .mark_verified(self.job.clone(), files)
            .await
            .map_err(CopyError::internal)
    }
}

/// A kind of destination. `dest` names are the job's absolute destination paths
/// (`layout::targets`); each kind maps them to its own names.
pub trait Destination: Send + Sync + 'static {
    /// A big file being written.
    type Upload: Send + Sync + 'static;
    /// One stream of bytes into an upload: the whole file, or a part.
    type Writer: Send + 'static;

    /// The kind's name in metrics: `folder`, `s3`, `azure_blob` or `gcs`.
    fn kind(&self) -> &'static str;

    /// What this kind carries.
    fn caps(&self) -> Caps;

    /// The name reports show for `dest` (a path, or an object key).
    fn shown(&self, dest: &RawPath) -> String;

    /// What is at `dest` now.
    fn plan(
        &self,
        dest: &RawPath,
    ) -> impl Future<Output = Result<Option<Existing>, CopyError>> + Send;

    /// The BLAKE3 of what is at `dest`, hex, by reading it where the kind records none.
    fn content_hash(
        &self,
        dest: &RawPath,
        existing: &Existing,
    ) -> impl Future<Output = Result<Option<String>, CopyError>> + Send;

    /// Gives what is at `dest` the source's modification time (content found equal).
    fn keep_time(
        &self,
        dest: &RawPath,
        modified: time::OffsetDateTime,
    ) -> impl Future<Output = ()> + Send;

    /// Makes the folder `dest` (ending in `/`); whether it was there already.
    fn folder(&self, dest: &RawPath) -> impl Future<Output = Result<bool, CopyError>> + Send;

    /// Puts files that arrived whole, journaled together: the batch commit.
    fn put_whole(
        &self,
        files: Vec<Whole>,
        journal: &Journal,
    ) -> impl Future<Output = Vec<Result<(), CopyError>>> + Send;

    /// How a file of `size` bytes travels here; `stream` says the engine would rather stream
    /// it (one lane, or paced).
    fn layout(
        &self,
        dest: &RawPath,
        size: u64,
        stream: bool,
    ) -> impl Future<Output = Layout> + Send;

    /// Begins (or takes up again) writing `dest`, `size` bytes modified at `modified`.
    fn begin(
        &self,
        dest: &RawPath,
        size: u64,
        modified: Option<&str>,
        layout: &Layout,
    ) -> impl Future<Output = Result<(Self::Upload, Resume), CopyError>> + Send;

    /// Opens a stream of bytes written from offset `at`.
    fn writer(
        &self,
        upload: &Self::Upload,
        at: u64,
    ) -> impl Future<Output = Result<Self::Writer, CopyError>> + Send;

    /// Writes the stream's next bytes.
    fn write(
        &self,
        writer: &mut Self::Writer,
        data: Bytes,
    ) -> impl Future<Output = Result<(), CopyError>> + Send;

    /// Ends a stream: all its bytes are written. A verified part `(start, len, cv)` is
    /// journaled, so a restarted Bifrost does not fetch it again.
    fn written(
        &self,
        upload: &Self::Upload,
        writer: Self::Writer,
        part: Option<(u64, u64, [u8; 32])>,
    ) -> impl Future<Output = Result<(), CopyError>> + Send;

    /// Makes the verified file durable, journals it, and publishes it with its time.
    fn commit(
        &self,
        upload: Self::Upload,
        done: Done,
        journal: &Journal,
    ) -> impl Future<Output = Result<(), CopyError>> + Send;

    /// Throws a begun file away.
    fn abort(&self, upload: Self::Upload) -> impl Future<Output = ()> + Send;

    /// Removes `dest` (a file deleted at the source).
    fn remove(&self, dest: &RawPath) -> impl Future<Output = Result<Removed, CopyError>> + Send;
}
