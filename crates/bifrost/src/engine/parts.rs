//! A big file in parts over the tunnel's lanes: each part read with its range bounded, written
//! at its offset, proven by its chaining value and journaled once synced, so a restarted Bifrost
//! fetches only the missing parts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use http::StatusCode;
use http_body_util::BodyExt;
use mover_proto::header;
use mover_proto::limits::LimitError;
use tokio::io::AsyncWriteExt;

use super::copy::{from_agent, local, parse_time, read_error, Assembled, ChunkWriter, CopyError};
use super::tree;
use crate::agent_client::AgentClient;
use crate::metrics::Meter;
use crate::store::PendingFile;

/// Files bigger than this are read in parts when the tunnel has lanes.
pub(super) const SPLIT_MIN: u64 = 64 << 20;
/// Parts in flight per connection: one streaming while the next one's request goes out.
const PARTS_PER_LANE: usize = 2;

/// The journal of a partial file's finished parts, beside it: a header line with the
/// source's size and modification time, then one line per part (`START LEN CV`), each written
/// after the part's bytes were synced, so a restarted Bifrost fetches only the missing parts.
pub(super) fn parts_journal(partial: &Path) -> std::path::PathBuf {
    let mut name = partial.file_name().unwrap_or_default().to_os_string();
    name.push(".parts");
    partial.with_file_name(name)
}

fn journal_header(size: u64, modified: Option<&str>) -> String {
    format!("mover-parts 1 {size} {}\n", modified.unwrap_or("-"))
}

/// The finished parts a journal records for this version of the source.
fn read_journal(text: &str, header: &str, parts: &[(u64, u64)]) -> BTreeMap<u64, [u8; 32]> {
    let mut done = BTreeMap::new();
    let mut lines = text.lines();
    if lines.next().map(|l| format!("{l}\n")) != Some(header.to_owned()) {
        return done;
    }
    let known: std::collections::HashMap<u64, u64> = parts.iter().copied().collect();
    for line in lines {
        let mut f = line.split(' ');
        let (Some(start), Some(len), Some(cv)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Ok(start), Ok(len), Some(cv)) = (start.parse(), len.parse(), tree::parse_cv(cv))
        else {
            continue;
        };
        if known.get(&start) == Some(&len) {
            done.insert(start, cv);
        }
    }
    done
}

/// Copies a big file in parts spread over the tunnel's lanes, resuming from the parts
/// journal; `None` when the file turns out too small to split.
pub(super) async fn copy_in_parts(
    client: &AgentClient,
    file: &PendingFile,
    meter: &Meter,
    add: &(dyn Fn(u64) + Sync),
    partial: &Path,
) -> Result<Option<Assembled>, CopyError> {
    use futures_util::StreamExt;
    let entry = client.stat(&file.source).await.map_err(from_agent)?;
    let size = entry.size;
    if size <= SPLIT_MIN {
        return Ok(None);
    }
    let parts = tree::parts(size);
    let header = journal_header(size, entry.modified.as_deref());
    let journal = parts_journal(partial);
    let previous = tokio::fs::read_to_string(&journal)
        .await
        .unwrap_or_default();
    let same_len = tokio::fs::metadata(partial)
        .await
        .is_ok_and(|m| m.len() == size);
    let mut cvs = if same_len {
        read_journal(&previous, &header, &parts)
    } else {
        BTreeMap::new()
    };
    if cvs.is_empty() {
        // A fresh start: a temporary file of the final length (holes until written) and a
        // journal for this version of the source. A new file, not the old one truncated (see
        // above).
        let _ = tokio::fs::remove_file(partial).await;
        let f = tokio::fs::File::create(partial)
            .await
            .map_err(|e| local(e, "create", partial))?;
        f.set_len(size)
            .await
            .map_err(|e| local(e, "extend", partial))?;
        tokio::fs::write(&journal, &header)
            .await
            .map_err(|e| local(e, "write", &journal))?;
    }
    add(parts
        .iter()
        .filter(|(start, _)| cvs.contains_key(start))
        .map(|(_, len)| len)
        .sum());
    let mut log = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .await
        .map_err(|e| local(e, "open", &journal))?;
    let todo: Vec<(u64, u64)> = parts
        .iter()
        .copied()
        .filter(|(start, _)| !cvs.contains_key(start))
        .collect();
    let in_flight = (client.lanes() * PARTS_PER_LANE).clamp(2, 16);
    let modified = entry.modified.clone();
    let mut fetches = futures_util::stream::iter(todo)
        .map(|(start, len)| {
            fetch_part(
                client,
                file,
                meter,
                add,
                partial,
                (start, len),
                (size, modified.as_deref()),
            )
        })
        .buffer_unordered(in_flight);
    let mut progressed = false;
    // Parts are journaled only once their bytes are synced, a batch at a time: a sync per
    // part cost half the throughput, and a batch lost to a crash is a few parts read again.
    // The sync runs while the next parts stream in: waiting for it stalled every part in
    // flight while the disk wrote up to 64 MiB.
    let sync_every = (size / 16).clamp(tree::PART, 64 << 20);
    let mut unsynced: Vec<(u64, u64, [u8; 32])> = Vec::new();
    let syncer = std::sync::Arc::new(
        tokio::fs::OpenOptions::new()
            .write(true)
            .open(partial)
            .await
            .map_err(|e| local(e, "open", partial))?
            .into_std()
            .await,
    );
    type Syncing = (
        tokio::task::JoinHandle<std::io::Result<()>>,
        Vec<(u64, u64, [u8; 32])>,
    );
    let mut syncing: Option<Syncing> = None;
    loop {
        let result = tokio::select! {
            synced = async {
                match syncing.as_mut() {
                    Some((task, _)) => task.await,
                    None => std::future::pending().await,
                }
            } => {
                let parts = syncing.take().map(|(_, parts)| parts).unwrap_or_default();
                synced
                    .map_err(|e| CopyError::Retry(e.to_string()))?
                    .map_err(|e| local(e, "sync", partial))?;
                let mut lines = String::new();
                for (start, len, cv) in parts {
                    let hex: String = cv.iter().map(|b| format!("{b:02x}")).collect();
                    lines.push_str(&format!("{start} {len} {hex}\n"));
                }
                log.write_all(lines.as_bytes())
                    .await
                    .map_err(|e| local(e, "write", &journal))?;
                continue;
            }
            next = fetches.next() => match next {
                Some(result) => result,
                None => break,
            },
        };
        let (start, len, cv) = match result {
            Ok(done) => done,
            Err((e, moved)) => {
                progressed |= moved;
                return Err(match e {
                    CopyError::Retry(reason) if progressed => CopyError::Interrupted(reason),
                    e => e,
                });
            }
        };
        progressed = true;
        cvs.insert(start, cv);
        unsynced.push((start, len, cv));
        if syncing.is_none() && unsynced.iter().map(|p| p.1).sum::<u64>() >= sync_every {
            let file = syncer.clone();
            let task = tokio::task::spawn_blocking(move || file.sync_data());
            syncing = Some((task, std::mem::take(&mut unsynced)));
        }
    }
    // A sync still running may be the one that meets a write-back error; the file the final
    // sync opens after it would not hear of that error.
    if let Some((task, _)) = syncing {
        task.await
            .map_err(|e| CopyError::Retry(e.to_string()))?
            .map_err(|e| local(e, "sync", partial))?;
    }
    drop(fetches);
    let Some(hash) = tree::root(size, &cvs) else {
        return Err(CopyError::Retry("a part of the file is missing".into()));
    };
    let out = tokio::fs::OpenOptions::new()
        .write(true)
        .open(partial)
        .await
        .map_err(|e| local(e, "open", partial))?;
    Ok(Some(Assembled {
        out,
        size,
        blake3: hash.to_hex().to_string(),
        modified: modified.as_deref().and_then(parse_time),
        in_parts: true,
    }))
}

/// Fetches and writes one part; the error says whether bytes had arrived.
async fn fetch_part(
    client: &AgentClient,
    file: &PendingFile,
    meter: &Meter,
    add: &(dyn Fn(u64) + Sync),
    partial: &Path,
    (start, len): (u64, u64),
    (size, modified): (u64, Option<&str>),
) -> Result<(u64, u64, [u8; 32]), (CopyError, bool)> {
    use blake3::hazmat::HasherExt;
    let fail = |e| (e, false);
    let mut res = client
        .read_part(&file.source, start, len)
        .await
        .map_err(|e| fail(from_agent(e)))?;
    if res.status() != StatusCode::PARTIAL_CONTENT {
        return Err(fail(CopyError::Retry(
            "the agent did not answer with the part asked for".into(),
        )));
    }
    let h = res.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if text(header::SIZE).and_then(|s| s.parse::<u64>().ok()) != Some(size)
        || text(header::MODIFIED).as_deref() != modified
    {
        return Err(fail(CopyError::Changed("changed during copy".into())));
    }
    let out = tokio::fs::OpenOptions::new()
        .write(true)
        .open(partial)
        .await
        .map_err(|e| fail(local(e, "open", partial)))?;
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(start);
    let mut written = 0u64;
    let mut writer = ChunkWriter::new(out).await;
    let mut trailers = None;
    while let Some(frame) = res.body_mut().frame().await {
        match frame.map(|f| f.into_data()) {
            Ok(Ok(data)) => {
                let n = data.len() as u64;
                if written + n > len {
                    // Past the part's end lies a neighbour that may be journaled already.
                    drop(writer);
                    let reason = LimitError::TooLong(len).to_string();
                    return Err((CopyError::Retry(reason), written > 0));
                }
                hasher.update(&data);
                if !writer.put(start + written, data).await {
                    break;
                }
                written += n;
                add(n);
                meter.received.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(f)) => trailers = f.into_trailers().ok(),
            Err(e) => {
                let _ = writer.finish().await;
                let reason = format!("connection to the agent failed mid-file: {e}");
                return Err((CopyError::Retry(reason), written > 0));
            }
        }
    }
    writer
        .finish()
        .await
        .map_err(|e| (local(e, "write", partial), true))?;
    let trailers = trailers.unwrap_or_default();
    if let Some(err) = read_error(&trailers) {
        return Err((CopyError::Changed(err), true));
    }
    let theirs = trailers
        .get(header::SUBTREE_CV)
        .and_then(|v| v.to_str().ok())
        .and_then(tree::parse_cv);
    let ours = hasher.finalize_non_root();
    if written != len || theirs != Some(ours) {
        return Err((
            CopyError::Retry(format!(
                "checksum mismatch in bytes {start}..{} ({written} of {len} arrived)",
                start + len
            )),
            true,
        ));
    }
    Ok((start, len, ours))
}
