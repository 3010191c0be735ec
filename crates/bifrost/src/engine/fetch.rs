//! Reading an agent's answer: one typed reader for whole-file, part and batch reads. It takes
//! the size and modification time from the head, hands out chunks never past the announced
//! length, meters and paces every byte in one place, and reads the trailer's verdict.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mover_proto::header;
use mover_proto::limits::{self, LimitError};
use mover_proto::many::{Decoder, Record};

use super::limit::Limiter;
use crate::dest::parse_time;
use crate::failure::CopyError;
use crate::metrics::Meter;
use crate::tree;

/// Where a copy's bytes are counted and paced: the job's meter, the bytes this copy has
/// counted into it (given back when the copy ends), and the job's bandwidth limit.
pub struct Tap<'a> {
    pub meter: &'a Meter,
    pub counted: &'a AtomicU64,
    pub limiter: Option<&'a Limiter>,
}

impl Tap<'_> {
    /// `n` bytes arrived from the agent.
    pub async fn took(&self, n: u64) {
        if let Some(l) = self.limiter {
            l.take(n).await;
        }
        self.meter.received.fetch_add(n, Ordering::Relaxed);
        self.progress(n);
    }

    /// `n` bytes count as copied so far without arriving now (a resumed prefix, journaled
    /// parts).
    pub fn progress(&self, n: u64) {
        self.meter.inflight.fetch_add(n, Ordering::Relaxed);
        self.counted.fetch_add(n, Ordering::Relaxed);
    }
}

/// What the trailer says about the bytes read.
pub struct Trailer {
    /// The whole file's BLAKE3, hex (whole-file reads).
    pub blake3: Option<String>,
    /// The part's chaining value (part reads).
    pub cv: Option<[u8; 32]>,
}

/// An agent's answer to a read, being read.
pub struct Fetch {
    body: Incoming,
    /// The file's size now.
    pub size: u64,
    /// Its modification time now, as the agent spelt it.
    pub modified: Option<String>,
    /// The file offset of the first byte of the answer.
    pub from: u64,
    /// Bytes the answer may carry.
    announced: u64,
    /// Bytes handed out so far.
    pub got: u64,
    trailers: Option<HeaderMap>,
}

fn text(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl Fetch {
    /// The answer to a read from `offset` to the end; it starts at `offset` only if the agent
    /// honoured the range.
    pub fn whole(res: Response<Incoming>, offset: u64) -> Result<Self, CopyError> {
        let h = res.headers();
        let Some(size) = text(h, header::SIZE).and_then(|s| s.parse::<u64>().ok()) else {
            return Err(CopyError::Limit(
                "the agent did not say the file's size".into(),
            ));
        };
        let size = limits::file_size(size).map_err(|e| CopyError::Limit(e.to_string()))?;
        let from = if res.status() == StatusCode::PARTIAL_CONTENT {
            offset
        } else {
            0
        };
        if from > size {
            return Err(CopyError::Shrank);
        }
        let modified = text(h, header::MODIFIED);
        Ok(Self {
            body: res.into_body(),
            size,
            modified,
            from,
            announced: size - from,
            got: 0,
            trailers: None,
        })
    }

    /// The answer to a read of the part `start..start + len` of a file listed as `size`
    /// bytes modified at `modified`: a file changed since is refused.
    pub fn part(
        res: Response<Incoming>,
        (start, len): (u64, u64),
        (size, modified): (u64, Option<&str>),
    ) -> Result<Self, CopyError> {
        if res.status() != StatusCode::PARTIAL_CONTENT {
            return Err(CopyError::Link(
                "the agent did not answer with the part asked for".into(),
            ));
        }
        let h = res.headers();
        if text(h, header::SIZE).and_then(|s| s.parse::<u64>().ok()) != Some(size)
            || text(h, header::MODIFIED).as_deref() != modified
        {
            return Err(CopyError::Changed("changed during copy".into()));
        }
        Ok(Self {
            modified: modified.map(str::to_owned),
            body: res.into_body(),
            size,
            from: start,
            announced: len,
            got: 0,
            trailers: None,
        })
    }

    /// The next chunk, metered and paced through `tap`; `None` once the answer ended. A chunk
    /// that would go past the announced length is refused whole: none of it is handed out.
    pub async fn chunk(&mut self, tap: &Tap<'_>) -> Result<Option<Bytes>, CopyError> {
        loop {
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| {
                CopyError::Link(format!("connection to the agent failed mid-file: {e}"))
            })?;
            match frame.into_data() {
                Ok(data) => {
                    let n = data.len() as u64;
                    if self.got + n > self.announced {
                        return Err(CopyError::TooLong(
                            LimitError::TooLong(self.announced).to_string(),
                        ));
                    }
                    self.got += n;
                    tap.took(n).await;
                    return Ok(Some(data));
                }
                Err(frame) => self.trailers = frame.into_trailers().ok(),
            }
        }
    }

    /// The modification time as a time.
    pub fn modified_time(&self) -> Option<time::OffsetDateTime> {
        self.modified.as_deref().and_then(parse_time)
    }

    /// After the last chunk: the trailer's verdict. The agent's read error (the file changed
    /// under the read) is the file's failure; all bytes announced must have arrived.
    pub fn end(self) -> Result<Trailer, CopyError> {
        let trailers = self.trailers.unwrap_or_default();
        if let Some(err) = text(&trailers, header::READ_ERROR) {
            return Err(CopyError::Changed(err));
        }
        if self.got != self.announced {
            return Err(CopyError::Checksum(format!(
                "checksum mismatch (got {} of {} bytes)",
                self.from + self.got,
                self.from + self.announced
            )));
        }
        Ok(Trailer {
            blake3: text(&trailers, header::BLAKE3),
            cv: text(&trailers, header::SUBTREE_CV)
                .as_deref()
                .and_then(tree::parse_cv),
        })
    }
}

/// An agent's answer to a batch read, record by record.
pub struct Batch {
    body: Incoming,
    decoder: Decoder,
    ended: bool,
}

impl Batch {
    /// Reads the answer to a batch asked with `max_size`.
    pub fn new(res: Response<Incoming>, max_size: u64) -> Self {
        Self {
            body: res.into_body(),
            decoder: Decoder::new(max_size),
            ended: false,
        }
    }

    /// The next record, its bytes metered through `tap`; `None` once the answer ended. The
    /// error says why the rest of the batch is lost.
    pub async fn next(&mut self, tap: &Tap<'_>) -> Result<Option<Record>, String> {
        loop {
            match self.decoder.next_record() {
                Ok(Some(record)) => {
                    tap.took(record.content.len() as u64).await;
                    return Ok(Some(record));
                }
                Ok(None) if self.ended => return Ok(None),
                Ok(None) => {}
                Err(e) => return Err(format!("the agent sent a malformed batch: {e}")),
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(data);
                    }
                }
                Some(Err(e)) => {
                    return Err(format!("connection to the agent failed mid-batch: {e}"))
                }
                None => {
                    self.decoder
                        .finish()
                        .map_err(|e| format!("the agent sent a malformed batch: {e}"))?;
                    self.ended = true;
                }
            }
        }
    }
}

/// Bytes that hash to `blake3`, or the failure saying they do not.
pub fn verify_whole(got: &blake3::Hash, trailer: &Trailer) -> Result<String, CopyError> {
    let Some(expected) = &trailer.blake3 else {
        return Err(CopyError::Checksum("the agent sent no checksum".into()));
    };
    let got = got.to_hex().to_string();
    if &got != expected {
        return Err(CopyError::Checksum("checksum mismatch".into()));
    }
    Ok(got)
}
