//! A big file in parts over the tunnel's lanes: each part read with its range bounded, written
//! as it streams, proven by its chaining value and handed to the destination's journal, so a
//! restarted Bifrost fetches only the missing parts.

use std::collections::BTreeMap;

use super::copy::Mode;
use super::fetch::{Fetch, Tap};
use crate::agent_client::AgentClient;
use crate::dest::{Destination, Done, Layout, Resume};
use crate::failure::{from_agent, CopyError, Then};
use crate::store::PendingFile;

/// Files bigger than this are read in parts when the tunnel has lanes.
pub(super) const SPLIT_MIN: u64 = 64 << 20;
/// Parts in flight per connection: one streaming while the next one's request goes out.
const PARTS_PER_LANE: usize = 2;
/// Bytes of parts in flight at most, whatever their size (a destination's parts can be large).
const IN_FLIGHT_BYTES: u64 = 256 << 20;

/// Copies a file of `size` bytes modified at `modified` in `parts`, resuming from what the
/// destination kept: `(size, blake3)`.
pub(super) async fn copy_in_parts<D: Destination>(
    client: &AgentClient,
    dest: &D,
    file: &PendingFile,
    tap: &Tap<'_>,
    mode: &Mode,
    (size, modified): (u64, Option<&str>),
    parts: Vec<(u64, u64)>,
) -> Result<(u64, String), CopyError> {
    use futures_util::StreamExt;
    let max = parts.first().map(|p| p.1).unwrap_or(0);
    if parts.len() < 2 {
        return Err(CopyError::internal("a file in parts needs at least two"));
    }
    let layout = Layout::Parts(parts);
    let (upload, resume) = dest.begin(&file.dest, size, modified, &layout).await?;
    let Layout::Parts(parts) = layout else {
        return Err(CopyError::internal("the layout changed"));
    };
    let mut cvs = match resume {
        Resume::Parts(done) => done,
        _ => BTreeMap::new(),
    };
    tap.progress(
        parts
            .iter()
            .filter(|(start, _)| cvs.contains_key(start))
            .map(|(_, len)| len)
            .sum(),
    );
    let todo: Vec<(u64, u64)> = parts
        .iter()
        .copied()
        .filter(|(start, _)| !cvs.contains_key(start))
        .collect();
    let by_memory = usize::try_from((IN_FLIGHT_BYTES / max.max(1)).max(1)).unwrap_or(1);
    // A paced job gains nothing from more parts in flight than keep its one stream busy, and a
    // Bifrost killed mid-file loses what is in flight.
    let lanes = if tap.limiter.is_some() {
        1
    } else {
        client.lanes()
    };
    let in_flight = (lanes * PARTS_PER_LANE).clamp(2, 16).min(by_memory);
    let upload_ref = &upload;
    let mut fetches = futures_util::stream::iter(todo)
        .map(|part| fetch_part(client, dest, upload_ref, file, tap, part, (size, modified)))
        .buffer_unordered(in_flight);
    let mut progressed = false;
    while let Some(result) = fetches.next().await {
        match result {
            Ok((start, cv)) => {
                progressed = true;
                cvs.insert(start, cv);
            }
            Err((e, moved)) => {
                progressed |= moved;
                return Err(match e {
                    e if progressed && e.then() == Then::Retry => {
                        CopyError::Interrupted(e.to_string())
                    }
                    e => e,
                });
            }
        }
    }
    drop(fetches);
    let Some(hash) = crate::tree::root(size, max, &cvs) else {
        return Err(CopyError::Checksum("a part of the file is missing".into()));
    };
    let blake3 = hash.to_hex().to_string();
    let done = Done {
        seq: file.seq,
        size,
        blake3: blake3.clone(),
        modified: modified.and_then(crate::dest::parse_time),
    };
    dest.commit(upload, done, &mode.journal()).await?;
    Ok((size, blake3))
}

/// Fetches and writes one part, `(start, cv)`; the error says whether bytes had arrived.
async fn fetch_part<D: Destination>(
    client: &AgentClient,
    dest: &D,
    upload: &D::Upload,
    file: &PendingFile,
    tap: &Tap<'_>,
    (start, len): (u64, u64),
    (size, modified): (u64, Option<&str>),
) -> Result<(u64, [u8; 32]), (CopyError, bool)> {
    use blake3::hazmat::HasherExt;
    let fail = |e| (e, false);
    let res = client
        .read_part(&file.source, start, len)
        .await
        .map_err(|e| fail(from_agent(e)))?;
    let mut fetch = Fetch::part(res, (start, len), (size, modified)).map_err(fail)?;
    let mut writer = dest.writer(upload, start).await.map_err(fail)?;
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(start);
    loop {
        match fetch.chunk(tap).await {
            Ok(Some(data)) => {
                hasher.update(&data);
                if let Err(e) = dest.write(&mut writer, data).await {
                    return Err((e, true));
                }
            }
            Ok(None) => break,
            Err(e) => {
                // Past the part's end lies a neighbour that may be journaled already: what
                // arrived of this part is left unjournaled, to be fetched again.
                let moved = fetch.got > 0;
                let _ = dest.written(upload, writer, None).await;
                return Err((e, moved));
            }
        }
    }
    let ours = hasher.finalize_non_root();
    let verdict = fetch.end().and_then(|t| {
        if t.cv == Some(ours) {
            Ok(())
        } else {
            Err(CopyError::Checksum(format!(
                "checksum mismatch in bytes {start}..{}",
                start + len
            )))
        }
    });
    if let Err(e) = verdict {
        let _ = dest.written(upload, writer, None).await;
        return Err((e, true));
    }
    // A part the destination refused is no progress: it is fetched and put again.
    dest.written(upload, writer, Some((start, len, ours)))
        .await
        .map_err(|e| (e, false))?;
    Ok((start, ours))
}
