//! Reusable read buffers: a chunk read from a file goes to the network without being copied,
//! and its buffer comes back here once sent.
//!
//! A fresh 256 KiB allocation per chunk cost a third of the agent's CPU on a big file: glibc
//! hands blocks that size out as new pages (a page fault and zeroing each), and copying the
//! chunk into them added more.

use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;

/// Buffers kept for reuse; more in flight at once are allocated and freed as usual.
const KEEP: usize = 16;

/// Buffers of one size.
pub struct Pool {
    size: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

/// The pool of file read chunks.
pub static CHUNKS: LazyLock<Arc<Pool>> = LazyLock::new(|| Pool::new(crate::fsops::READ_CHUNK));

impl Pool {
    /// A pool of buffers of `size` bytes.
    pub fn new(size: usize) -> Arc<Self> {
        Arc::new(Self {
            size,
            free: Mutex::new(Vec::new()),
        })
    }

    /// A buffer of the pool's size, reused when one is free.
    pub fn get(self: &Arc<Self>) -> Buf {
        let data = self.lock().pop().unwrap_or_else(|| vec![0u8; self.size]);
        Buf {
            data,
            pool: self.clone(),
        }
    }

    fn put(&self, data: Vec<u8>) {
        let mut free = self.lock();
        if free.len() < KEEP && data.len() == self.size {
            free.push(data);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic elsewhere cannot leave a list of buffers inconsistent.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The size of its buffers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Buffers waiting for reuse.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }
}

/// A buffer from a [`Pool`], to fill and then [`Buf::freeze`].
pub struct Buf {
    data: Vec<u8>,
    pool: Arc<Pool>,
}

impl Buf {
    /// The whole buffer, to read into.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The first `len` bytes as `Bytes`; the buffer returns to its pool when they are dropped.
    pub fn freeze(mut self, len: usize) -> Bytes {
        let data = std::mem::take(&mut self.data);
        let len = len.min(data.len());
        Bytes::from_owner(Filled {
            data,
            len,
            pool: self.pool.clone(),
        })
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if !self.data.is_empty() {
            self.pool.put(std::mem::take(&mut self.data));
        }
    }
}

/// A filled buffer on its way out.
struct Filled {
    data: Vec<u8>,
    len: usize,
    pool: Arc<Pool>,
}

impl AsRef<[u8]> for Filled {
    fn as_ref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl Drop for Filled {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_once_every_copy_of_their_bytes_is_dropped() {
        let pool = Pool::new(8);
        let mut buf = pool.get();
        buf.space()[..3].copy_from_slice(b"abc");
        let bytes = buf.freeze(3);
        let clone = bytes.slice(1..);
        assert_eq!(&bytes[..], b"abc");
        assert_eq!(pool.idle(), 0);
        drop(bytes);
        assert_eq!(&clone[..], b"bc");
        assert_eq!(pool.idle(), 0);
        drop(clone);
        assert_eq!(pool.idle(), 1);
        // Reused, not reallocated; an unused buffer comes back too.
        let again = pool.get();
        assert_eq!(pool.idle(), 0);
        drop(again);
        assert_eq!(pool.idle(), 1);
        // No more than KEEP are kept.
        let many: Vec<Buf> = (0..KEEP + 5).map(|_| pool.get()).collect();
        drop(many);
        assert_eq!(pool.idle(), KEEP);
    }
}
