//! Admission of connections: caps in total and per address, so that clients that have not
//! authenticated cannot take the file descriptors that agents and the engine need.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use mover_proto::limits::{MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDR, RESERVED_FDS};

/// Connections held, in total and per address.
#[derive(Default)]
struct Counts {
    total: usize,
    by_addr: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Bifrost holds all the connections it may.
    Full,
    /// This address holds all the connections one address may.
    Address,
}

/// The caps, and what is held under them.
#[derive(Clone)]
pub struct Gate {
    counts: Arc<Mutex<Counts>>,
    total: usize,
    per_addr: usize,
}

/// One admitted connection; dropping it gives its place back.
pub struct Pass {
    counts: Arc<Mutex<Counts>>,
    /// The address it counts against, until it becomes an authorized tunnel.
    addr: Option<IpAddr>,
}

/// The key a peer is counted under: an IPv6 client gets a /64, so one host cannot take a whole
/// prefix's worth of places.
pub(crate) fn addr_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The decision, apart from the bookkeeping.
fn decide(
    total: usize,
    from_addr: usize,
    total_max: usize,
    per_addr: usize,
) -> Result<(), Refused> {
    if total >= total_max {
        return Err(Refused::Full);
    }
    if from_addr >= per_addr {
        return Err(Refused::Address);
    }
    Ok(())
}

/// The total cap for an open-file limit of `nofile`: [`MAX_CONNECTIONS`], or fewer so that
/// [`RESERVED_FDS`] stay free (each connection holds one descriptor).
pub fn total_for(nofile: Option<u64>) -> usize {
    match nofile {
        Some(n) => (n.saturating_sub(RESERVED_FDS) as usize).clamp(64, MAX_CONNECTIONS),
        None => MAX_CONNECTIONS,
    }
}

impl Gate {
    /// A gate with these caps.
    pub fn new(total: usize, per_addr: usize) -> Self {
        Self {
            counts: Arc::default(),
            total,
            per_addr,
        }
    }

    /// The gate for this process: the total cap fits its open-file limit.
    pub fn for_process() -> Self {
        Self::new(total_for(nofile()), MAX_CONNECTIONS_PER_ADDR)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `peer`, or says why not; checked and counted under one lock.
    pub fn admit(&self, peer: IpAddr) -> Result<Pass, Refused> {
        let key = addr_key(peer);
        let mut c = self.lock();
        let from_addr = c.by_addr.get(&key).copied().unwrap_or(0);
        decide(c.total, from_addr, self.total, self.per_addr)?;
        c.total += 1;
        *c.by_addr.entry(key).or_default() += 1;
        Ok(Pass {
            counts: self.counts.clone(),
            addr: Some(key),
        })
    }

    /// Connections held (total, from `peer`'s address).
    pub fn held(&self, peer: IpAddr) -> (usize, usize) {
        let c = self.lock();
        (
            c.total,
            c.by_addr.get(&addr_key(peer)).copied().unwrap_or(0),
        )
    }
}

impl Pass {
    /// The connection is an authorized tunnel now: it stops counting against its address
    /// (many agents may sit behind one NAT), and counts only in the total.
    pub fn authenticated(&mut self) {
        if let Some(key) = self.addr.take() {
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            release(&mut c, key);
        }
    }
}

fn release(c: &mut Counts, key: IpAddr) {
    if let Some(n) = c.by_addr.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            c.by_addr.remove(&key);
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(key) = self.addr.take() {
            release(&mut c, key);
        }
    }
}

/// The soft open-file limit, raised to the hard limit first: the default soft limit (often
/// 1,024) is far below what the connection caps and a busy engine need.
#[cfg(unix)]
pub fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    // `None` is unlimited: a soft limit already unlimited needs nothing, and an unlimited
    // hard limit is not a valid soft one (macOS refuses it), so ask for plenty instead.
    let wanted = limit.maximum.or(Some(1 << 16));
    if limit.current.is_some() && limit.current < wanted {
        limit.current = wanted;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    nofile()
}

/// The soft open-file limit, raised to the hard limit first (not limited on this platform).
#[cfg(not(unix))]
pub fn raise_nofile() -> Option<u64> {
    None
}

#[cfg(unix)]
fn nofile() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn nofile() -> Option<u64> {
    None
}

/// A connection's [`Pass`], shared with its requests (in their extensions) so the tunnel
/// endpoint can take it along when the connection becomes a tunnel.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Option<Pass>>>);

impl Shared {
    /// Shares `pass`.
    pub fn new(pass: Pass) -> Self {
        Self(Arc::new(Mutex::new(Some(pass))))
    }

    /// Takes the pass (once): the caller now holds the connection's place.
    pub fn take(&self) -> Option<Pass> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn caps_hold_in_total_and_per_address() {
        let gate = Gate::new(4, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let mut a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refused::Address));
        // An authorized tunnel leaves its address's count, not the total.
        a2.authenticated();
        let a3 = gate.admit(a).unwrap();
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).err(), Some(Refused::Full));
        drop(a1);
        drop(a2);
        assert_eq!(gate.held(a), (2, 1));
        drop(a3);
        assert_eq!(gate.held(a), (1, 0));
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let gate = Gate::new(10, 1);
        let _p = gate.admit("2001:db8::1".parse().unwrap()).unwrap();
        let other = gate.admit("2001:db8::ffff:2".parse().unwrap());
        assert_eq!(other.err(), Some(Refused::Address));
        assert!(gate.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_total_leaves_descriptors_free() {
        assert_eq!(total_for(Some(1024)), 512);
        assert_eq!(total_for(Some(1 << 20)), MAX_CONNECTIONS);
        assert_eq!(total_for(Some(100)), 64);
        assert_eq!(decide(0, 0, 1, 1), Ok(()));
    }
}
