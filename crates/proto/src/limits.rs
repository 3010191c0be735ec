//! What Bifrost accepts from an agent and from clients that have not authenticated, defined
//! once. Bifrost checks every agent answer against these before it costs memory or disk;
//! breaking one fails that folder or file with a reason that starts `agent sent …`.

/// Entries one browse page may hold (the agent sends [`crate::BROWSE_PAGE_SIZE`]).
pub const MAX_PAGE_ENTRIES: usize = 5 * crate::BROWSE_PAGE_SIZE;
/// Bytes of one browse page's JSON body (1,000 entries of the longest names fit).
pub const MAX_PAGE_BYTES: usize = 4 << 20;
/// Bytes of one name: NTFS allows 255 UTF-16 units (up to 765 UTF-8 bytes), Linux 255 bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Bytes of one path, at the agent or at the destination.
pub const MAX_PATH_BYTES: usize = crate::MAX_PATH_BYTES;
/// Folders below a job's source that a walk descends.
pub const MAX_DEPTH: usize = 1024;
/// Cursor pages of one folder: 20 million entries at the agent's page size, past any folder a
/// file server can still list, while a cursor that never ends stops within seconds.
pub const MAX_PAGES_PER_FOLDER: u64 = 20_000;
/// Bytes of a cursor the agent hands back (Bifrost echoes it in the next request).
pub const MAX_CURSOR_BYTES: usize = 1024;
/// The largest file an agent may announce: 16 TiB, NTFS's and ext4's limit with 4 KiB clusters.
pub const MAX_FILE_SIZE: u64 = 16 << 40;
/// Events per second an agent may send on its event stream, after a burst of the same size;
/// more are dropped (a `Changed` flood coalesces into one re-run).
pub const MAX_EVENTS_PER_SEC: u32 = 20;
/// Bytes of one event line.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Extra lanes one tunnel may hold besides its first connection.
pub const MAX_LANES: usize = 7;
/// Characters kept of each text an agent says about itself (version, OS, host).
pub const MAX_INFO_CHARS: usize = 200;
/// Tunnels waiting for authorization that one address may hold.
pub const MAX_WAITING_PER_ADDR: usize = 16;
/// Tunnels waiting for authorization in total.
pub const MAX_WAITING: usize = 1024;

/// Seconds a tunnel may wait for authorization before Bifrost closes it (its agent dials again).
pub const WAITING_TIMEOUT_SECS: u64 = 3600;

// Clients that have not authenticated: every connection until it is an authorized tunnel or
// has shown the admin token.

/// Connections Bifrost holds at once; lowered at start to what its open-file limit allows
/// after [`RESERVED_FDS`].
pub const MAX_CONNECTIONS: usize = 8192;
/// Connections one address (an IPv6 /64) may hold that are not authorized tunnels.
pub const MAX_CONNECTIONS_PER_ADDR: usize = 256;
/// File descriptors kept free of connections, for the database, destination files and logs.
pub const RESERVED_FDS: u64 = 512;
/// Seconds a client may take for its TLS handshake.
pub const TLS_HANDSHAKE_SECS: u64 = 10;
/// Seconds a client may take to send a request's headers (HTTP/1.1).
pub const HEADER_TIMEOUT_SECS: u64 = 10;
/// Seconds a client may take to send a request's body.
pub const BODY_TIMEOUT_SECS: u64 = 20;
/// Bytes of a request body (Bifrost's API takes small JSON bodies only).
pub const MAX_BODY_BYTES: usize = 2 << 20;
/// Seconds a connection may pass without a byte read or written before it is closed.
pub const IDLE_TIMEOUT_SECS: u64 = 120;
/// HTTP/2 keep-alive of clients' connections: a ping after this many idle seconds, and the
/// connection is closed when it is not answered within as many.
pub const KEEP_ALIVE_SECS: u64 = 20;
/// Concurrent streams one client's HTTP/2 connection may open.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// Wrong admin tokens (bearer or console sign-in) one address may send per minute, after a
/// burst of as many; past it every token from that address gets `429` with `Retry-After`.
pub const WRONG_TOKENS_PER_MIN: u32 = 10;
/// Milliseconds a wrong admin token waits before its `401`.
pub const WRONG_TOKEN_DELAY_MS: u64 = 400;
/// Failed sign-ins one account may have per [`FAILED_SIGN_IN_WINDOW_SECS`], after a burst of
/// as many; past it every sign-in to that account, right or wrong, gets `429` with
/// `Retry-After`. Wrong passwords also count against the address's [`WRONG_TOKENS_PER_MIN`].
pub const FAILED_SIGN_INS_PER_ACCOUNT: u32 = 5;
/// The window of [`FAILED_SIGN_INS_PER_ACCOUNT`]: 15 minutes.
pub const FAILED_SIGN_IN_WINDOW_SECS: u64 = 15 * 60;

/// Why an agent's answer was refused; the text is what the job's report shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A browse page with too many entries.
    #[error("agent sent a page of {0} entries (at most {MAX_PAGE_ENTRIES})")]
    PageEntries(usize),
    /// A browse page over [`MAX_PAGE_BYTES`].
    #[error("agent sent a page of over {MAX_PAGE_BYTES} bytes")]
    PageBytes,
    /// A name over [`MAX_NAME_BYTES`].
    #[error("agent sent a name of {0} bytes (at most {MAX_NAME_BYTES})")]
    NameBytes(usize),
    /// A path over [`MAX_PATH_BYTES`].
    #[error("agent sent a path of {0} bytes (at most {MAX_PATH_BYTES})")]
    PathBytes(usize),
    /// Folders nested deeper than [`MAX_DEPTH`].
    #[error("agent sent folders nested over {MAX_DEPTH} deep")]
    Depth,
    /// A folder of more than [`MAX_PAGES_PER_FOLDER`] pages.
    #[error("agent sent over {MAX_PAGES_PER_FOLDER} pages for one folder")]
    Pages,
    /// A cursor over [`MAX_CURSOR_BYTES`].
    #[error("agent sent a cursor of {0} bytes (at most {MAX_CURSOR_BYTES})")]
    CursorBytes(usize),
    /// A file size over [`MAX_FILE_SIZE`].
    #[error("agent sent a file size of {0} bytes (at most {MAX_FILE_SIZE})")]
    FileSize(u64),
    /// More bytes than the announced size or range.
    #[error("agent sent more than the {0} bytes it announced")]
    TooLong(u64),
}

/// Checks a file size an agent announced.
pub fn file_size(size: u64) -> Result<u64, LimitError> {
    if size > MAX_FILE_SIZE {
        return Err(LimitError::FileSize(size));
    }
    Ok(size)
}

/// Checks a name's length.
pub fn name(bytes: &[u8]) -> Result<(), LimitError> {
    if bytes.len() > MAX_NAME_BYTES {
        return Err(LimitError::NameBytes(bytes.len()));
    }
    Ok(())
}

/// Checks a path's length.
pub fn path(bytes: &[u8]) -> Result<(), LimitError> {
    if bytes.len() > MAX_PATH_BYTES {
        return Err(LimitError::PathBytes(bytes.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_what_is_over_them() {
        assert_eq!(file_size(MAX_FILE_SIZE), Ok(MAX_FILE_SIZE));
        assert_eq!(file_size(1 << 62), Err(LimitError::FileSize(1 << 62)));
        assert!(name(&[b'a'; MAX_NAME_BYTES]).is_ok());
        assert_eq!(
            name(&[b'a'; 60 * 1024]),
            Err(LimitError::NameBytes(60 * 1024))
        );
        assert!(path(&[b'a'; MAX_PATH_BYTES + 1]).is_err());
        assert!(LimitError::Depth.to_string().starts_with("agent sent"));
    }
}
