//! Several small files in one answer ([`crate::route::READ_MANY`]): the request and its framing.
//!
//! A job of many small files spent more on one HTTP/2 stream, one path check and one database
//! transaction per file than on the bytes. One request names up to [`MAX_FILES`] files; the
//! answer holds one record per file, in the order asked:
//!
//! ```text
//! record := head-length (u32, big endian) · head (JSON, a Head) · content · BLAKE3
//! ```
//!
//! where content is `head.len` bytes and BLAKE3 (32 bytes) follows only when `head.error` is
//! absent. The agent reads each file whole before its record starts, so a file that changes
//! while it is read becomes an error record, never a record with mixed content.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Files one request may name.
pub const MAX_FILES: usize = 256;
/// Longest head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest `max_size` a request may ask for: a file bigger than this is read on its own.
pub const MAX_FILE: u64 = 16 * 1024 * 1024;
/// Bytes of the BLAKE3 after each good record's content.
pub const HASH_LEN: usize = 32;

/// `POST` body of [`crate::route::READ_MANY`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadMany {
    /// The files, each as `path` or `path_b64` like the other routes take them.
    pub files: Vec<FileRef>,
    /// A file now bigger than this is answered with a 413 record (read it on its own).
    pub max_size: u64,
}

/// One file of a [`ReadMany`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRef {
    /// The path, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path's exact bytes, base64, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_b64: Option<String>,
}

/// What one record says about its file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    /// Bytes of content after the head (the file's size when it was read; 0 on error).
    pub len: u64,
    /// Modification time (RFC 3339, nanoseconds), unchanged while the file was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// Why this file was not sent; no content and no hash follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordError>,
}

/// A file of the batch that could not be sent, as the one-file routes would have answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordError {
    /// The HTTP status a one-file read would have had (404 vanished, 403 refused, 409 changed
    /// during the read, 413 bigger than `max_size`).
    pub status: u16,
    /// Human-readable reason.
    pub message: String,
}

/// The bytes that open a record: head length and head.
pub fn head_bytes(head: &Head) -> Vec<u8> {
    let json = serde_json::to_vec(head).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What the agent says about the file.
    pub head: Head,
    /// The content (empty on error).
    pub content: Bytes,
    /// The agent's BLAKE3 of the content (absent on error).
    pub blake3: Option<[u8; HASH_LEN]>,
}

/// Why an answer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A head longer than [`MAX_HEAD`].
    #[error("a record head of {0} bytes is longer than allowed")]
    HeadTooLong(usize),
    /// A head that is not the JSON of a [`Head`].
    #[error("a record head is malformed: {0}")]
    BadHead(String),
    /// Content longer than was asked for.
    #[error("a record of {0} bytes is bigger than the {1} asked for")]
    TooBig(u64, u64),
    /// The answer ended inside a record.
    #[error("the answer ended inside a record")]
    Truncated,
}

/// Splits an answer, pushed in the pieces it arrives in, into records. A record that lies
/// within one piece is handed out as a slice of it, without a copy; only one that spans pieces
/// is gathered (the agent packs records into 256 KiB frames, so most lie within one).
#[derive(Debug, Default)]
pub struct Decoder {
    pieces: VecDeque<Bytes>,
    /// Bytes in `pieces`.
    len: usize,
    max_size: u64,
}

impl Decoder {
    /// A decoder for an answer to a request with this `max_size`.
    pub fn new(max_size: u64) -> Self {
        Self {
            pieces: VecDeque::new(),
            len: 0,
            max_size,
        }
    }

    /// Adds bytes as they arrive.
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.len += data.len();
            self.pieces.push_back(data);
        }
    }

    /// The first `n` bytes (at most `self.len`), in one slice: the first piece's when it holds
    /// them.
    fn peek(&self, n: usize) -> std::borrow::Cow<'_, [u8]> {
        match self.pieces.front() {
            Some(first) if first.len() >= n => std::borrow::Cow::Borrowed(&first[..n]),
            _ => {
                let mut out = Vec::with_capacity(n);
                for piece in &self.pieces {
                    let need = n - out.len();
                    out.extend_from_slice(&piece[..need.min(piece.len())]);
                    if out.len() == n {
                        break;
                    }
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }

    /// Removes the first `n` bytes (at most `self.len`).
    fn take(&mut self, n: usize) -> Bytes {
        self.len -= n;
        if let Some(first) = self.pieces.front_mut() {
            if first.len() > n {
                return first.split_to(n);
            }
            if first.len() == n {
                return self.pieces.pop_front().unwrap_or_default();
            }
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let need = n - out.len();
            let Some(first) = self.pieces.front_mut() else {
                break;
            };
            if first.len() > need {
                out.extend_from_slice(&first.split_to(need));
            } else {
                out.extend_from_slice(first);
                self.pieces.pop_front();
            }
        }
        out.freeze()
    }

    /// The next whole record, if it has arrived.
    pub fn next_record(&mut self) -> Result<Option<Record>, FrameError> {
        if self.len < 4 {
            return Ok(None);
        }
        let len_bytes = self.peek(4);
        let head_len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if head_len > MAX_HEAD {
            return Err(FrameError::HeadTooLong(head_len));
        }
        let content_at = 4 + head_len;
        if self.len < content_at {
            return Ok(None);
        }
        let head: Head = serde_json::from_slice(&self.peek(content_at)[4..])
            .map_err(|e| FrameError::BadHead(e.to_string()))?;
        let (len, hash_len) = if head.error.is_some() {
            (0, 0)
        } else {
            (head.len, HASH_LEN)
        };
        if len > self.max_size {
            return Err(FrameError::TooBig(len, self.max_size));
        }
        // Bounded by `max_size` just above.
        let hash_at = content_at + len as usize;
        let total = hash_at + hash_len;
        if self.len < total {
            return Ok(None);
        }
        let mut record = self.take(total);
        let _ = record.split_to(content_at);
        let content = record.split_to(len as usize);
        let blake3 = (hash_len > 0).then(|| {
            let mut h = [0u8; HASH_LEN];
            h.copy_from_slice(&record);
            h
        });
        Ok(Some(Record {
            head,
            content,
            blake3,
        }))
    }

    /// Checks that the answer ended between records.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.len == 0 {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good(content: &[u8]) -> Vec<u8> {
        let mut out = head_bytes(&Head {
            len: content.len() as u64,
            modified: Some("2026-11-24T10:00:00Z".into()),
            error: None,
        });
        out.extend_from_slice(content);
        out.extend_from_slice(&[7u8; HASH_LEN]);
        out
    }

    #[test]
    fn records_come_out_whole_however_the_bytes_are_split() {
        let mut answer = good(b"hello");
        answer.extend(head_bytes(&Head {
            error: Some(RecordError {
                status: 404,
                message: "gone".into(),
            }),
            ..Head::default()
        }));
        answer.extend(good(b""));
        answer.extend(good(&[1u8; 1000]));
        for piece in [1, 3, 7, 64, answer.len()] {
            let mut d = Decoder::new(4096);
            let mut got = Vec::new();
            for chunk in answer.chunks(piece) {
                d.push(Bytes::copy_from_slice(chunk));
                while let Some(r) = d.next_record().unwrap() {
                    got.push(r);
                }
            }
            d.finish().unwrap();
            assert_eq!(got.len(), 4, "pieces of {piece}");
            assert_eq!(&got[0].content[..], b"hello");
            assert_eq!(got[0].blake3, Some([7u8; HASH_LEN]));
            assert_eq!(got[1].head.error.as_ref().unwrap().status, 404);
            assert_eq!(got[1].blake3, None);
            assert!(got[2].content.is_empty());
            assert_eq!(&got[3].content[..], &[1u8; 1000][..]);
        }
    }

    #[test]
    fn a_record_within_one_piece_is_handed_out_without_a_copy() {
        let mut answer = good(&[3u8; 500]);
        answer.extend(good(&[4u8; 500]));
        let piece = Bytes::from(answer);
        let range = piece.as_ptr() as usize..piece.as_ptr() as usize + piece.len();
        let mut d = Decoder::new(4096);
        d.push(piece.clone());
        for _ in 0..2 {
            let r = d.next_record().unwrap().unwrap();
            assert!(range.contains(&(r.content.as_ptr() as usize)));
        }
        d.finish().unwrap();
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let mut d = Decoder::new(10);
        d.push(good(&[0u8; 11]).into());
        assert_eq!(d.next_record(), Err(FrameError::TooBig(11, 10)));

        let mut d = Decoder::new(10);
        d.push(Bytes::copy_from_slice(&u32::MAX.to_be_bytes()));
        assert!(matches!(d.next_record(), Err(FrameError::HeadTooLong(_))));

        let mut d = Decoder::new(10);
        d.push(Bytes::from_static(&[0, 0, 0, 2, b'{', b'x']));
        assert!(matches!(d.next_record(), Err(FrameError::BadHead(_))));

        let mut d = Decoder::new(10);
        let whole = good(b"abc");
        d.push(Bytes::copy_from_slice(&whole[..whole.len() - 1]));
        assert_eq!(d.next_record(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated));
    }
}
