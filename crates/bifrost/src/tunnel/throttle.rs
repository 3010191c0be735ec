//! The event throttle: Bifrost acts on at most [`MAX_EVENTS_PER_SEC`] `Hello` and `Changed`
//! events of one agent (after a burst as large); the rest wait, coalesced: the latest `Hello`
//! and the union of the changed roots. Pure decisions over given instants, so they unit-test
//! without a clock; `events.rs` is the async shell. Lines are split here too, with the byte
//! cap checked before anything is kept.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mover_proto::limits::{MAX_EVENTS_PER_SEC, MAX_EVENT_BYTES};
use mover_proto::{AgentEvent, AgentInfo};
use tokio::time::Instant;

use crate::bucket::Bucket;

/// What to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// Record what the agent says about itself.
    Hello(AgentInfo),
    /// Re-run the kept-in-sync jobs under these roots.
    Changed(Vec<String>),
}

/// Events held back, and the rate they are let through at.
pub struct Throttle {
    bucket: Bucket,
    hello: Option<AgentInfo>,
    changed: Option<BTreeSet<String>>,
}

impl Throttle {
    /// A throttle with a full burst.
    pub fn new(now: Instant) -> Self {
        Self {
            bucket: Bucket::full(MAX_EVENTS_PER_SEC, Duration::from_secs(1), now),
            hello: None,
            changed: None,
        }
    }

    /// An event arrived: what to act on now, or `None` when it is held (or needs nothing).
    /// An event of a kind already held joins it, so a later one never overtakes it.
    pub fn offer(&mut self, event: AgentEvent, now: Instant) -> Option<Act> {
        match event {
            AgentEvent::Heartbeat => None,
            AgentEvent::Hello(info) => {
                if self.hello.is_none() && self.bucket.take(now).is_ok() {
                    return Some(Act::Hello(info));
                }
                self.hello = Some(info);
                None
            }
            AgentEvent::Changed { roots } => {
                if self.changed.is_none() && self.bucket.take(now).is_ok() {
                    return Some(Act::Changed(roots));
                }
                let held = self.changed.get_or_insert_with(BTreeSet::new);
                // The union stays within one line's bytes: a flood of made-up roots cannot
                // grow it (roots Bifrost watches are few and short).
                let mut bytes: usize = held.iter().map(String::len).sum();
                for root in roots {
                    if bytes + root.len() > MAX_EVENT_BYTES {
                        break;
                    }
                    bytes += root.len();
                    held.insert(root);
                }
                None
            }
        }
    }

    /// When held events may go, if any are held.
    pub fn due(&mut self, now: Instant) -> Option<Instant> {
        (self.hello.is_some() || self.changed.is_some()).then(|| now + self.bucket.wait(now))
    }

    /// The held events whose turn has come: the latest `Hello`, then one `Changed`.
    pub fn release(&mut self, now: Instant) -> Vec<Act> {
        let mut out = Vec::new();
        if self.hello.is_some() && self.bucket.take(now).is_ok() {
            out.extend(self.hello.take().map(Act::Hello));
        }
        if self.changed.is_some() && self.bucket.take(now).is_ok() {
            out.extend(
                self.changed
                    .take()
                    .map(|roots| Act::Changed(roots.into_iter().collect())),
            );
        }
        out
    }
}

/// A line over [`MAX_EVENT_BYTES`]: the stream ends there.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong;

/// Splits the event stream into lines, keeping at most [`MAX_EVENT_BYTES`] of an unfinished
/// one.
#[derive(Default)]
pub struct Lines {
    partial: BytesMut,
}

impl Lines {
    /// The lines that `chunk` completes.
    pub fn push(&mut self, mut chunk: Bytes) -> Result<Vec<Bytes>, TooLong> {
        let mut out = Vec::new();
        while let Some(pos) = chunk.iter().position(|b| *b == b'\n') {
            let piece = chunk.split_to(pos + 1);
            if self.partial.len() + pos > MAX_EVENT_BYTES {
                return Err(TooLong);
            }
            if self.partial.is_empty() {
                out.push(piece);
            } else {
                self.partial.extend_from_slice(&piece);
                out.push(self.partial.split().freeze());
            }
        }
        if self.partial.len() + chunk.len() > MAX_EVENT_BYTES {
            return Err(TooLong);
        }
        self.partial.extend_from_slice(&chunk);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn changed(root: &str) -> AgentEvent {
        AgentEvent::Changed {
            roots: vec![root.to_owned()],
        }
    }

    fn hello(host: &str) -> AgentInfo {
        AgentInfo {
            version: "1".into(),
            os: "linux".into(),
            host: host.into(),
            roots: vec![],
        }
    }

    #[test]
    fn a_changed_flood_coalesces_into_one_rerun() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0);
        let burst = MAX_EVENTS_PER_SEC as usize;
        let acted: Vec<_> = (0..10_000)
            .filter_map(|i| t.offer(changed(&format!("/r{}", i % 3)), t0))
            .collect();
        assert_eq!(acted.len(), burst);
        // The rest wait for one token and then go as one event with every root.
        let due = t.due(t0).unwrap();
        assert!(due > t0 && due <= t0 + Duration::from_secs(1));
        assert_eq!(t.release(due - Duration::from_millis(1)), vec![]);
        let released = t.release(due);
        assert_eq!(
            released,
            vec![Act::Changed(vec!["/r0".into(), "/r1".into(), "/r2".into()])]
        );
        assert_eq!(t.due(due), None);
        assert_eq!(t.release(due + Duration::from_secs(5)), vec![]);
    }

    #[test]
    fn a_hello_flood_keeps_the_latest() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0);
        let acted = (0..1000)
            .filter_map(|i| t.offer(AgentEvent::Hello(hello(&format!("h{i}"))), t0))
            .count();
        assert_eq!(acted, MAX_EVENTS_PER_SEC as usize);
        // Heartbeats cost nothing and do not disturb what is held.
        assert_eq!(t.offer(AgentEvent::Heartbeat, t0), None);
        let due = t.due(t0).unwrap();
        assert_eq!(t.release(due), vec![Act::Hello(hello("h999"))]);
        // A later quiet event passes at once.
        let later = due + Duration::from_secs(2);
        assert_eq!(
            t.offer(AgentEvent::Hello(hello("x")), later),
            Some(Act::Hello(hello("x")))
        );
    }

    #[test]
    fn held_roots_stay_within_a_line() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0);
        for i in 0..MAX_EVENTS_PER_SEC {
            t.offer(changed(&format!("/burst{i}")), t0);
        }
        for i in 0..100_000 {
            t.offer(changed(&format!("/made-up/{i:0>40}")), t0);
        }
        let due = t.due(t0).unwrap();
        let Act::Changed(roots) = &t.release(due)[0] else {
            panic!("not a Changed")
        };
        let bytes: usize = roots.iter().map(String::len).sum();
        assert!(bytes <= MAX_EVENT_BYTES, "{bytes}");
    }

    #[test]
    fn lines_split_across_chunks_and_a_long_one_ends_the_stream() {
        let mut l = Lines::default();
        assert_eq!(
            l.push(Bytes::from_static(b"ab")).unwrap(),
            Vec::<Bytes>::new()
        );
        assert_eq!(
            l.push(Bytes::from_static(b"c\nd\nef")).unwrap(),
            vec![Bytes::from_static(b"abc\n"), Bytes::from_static(b"d\n")]
        );
        assert_eq!(
            l.push(Bytes::from_static(b"\n")).unwrap(),
            vec![Bytes::from_static(b"ef\n")]
        );
        // An endless line is refused once it passes the cap, without keeping more of it.
        let mut l = Lines::default();
        let chunk = Bytes::from(vec![b'x'; MAX_EVENT_BYTES / 2]);
        assert!(l.push(chunk.clone()).is_ok());
        assert!(l.push(chunk.clone()).is_ok());
        assert_eq!(l.push(chunk), Err(TooLong));
        assert!(l.partial.len() <= MAX_EVENT_BYTES);
        // A whole line over the cap in one chunk too.
        let mut big = vec![b'y'; MAX_EVENT_BYTES + 1];
        big.push(b'\n');
        assert_eq!(Lines::default().push(Bytes::from(big)), Err(TooLong));
    }
}
