//! The running agent: a handle to its state and the reconnect loop that owns the tunnel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mover_proto::SessionState;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::Config;
use crate::home::AgentHome;
use crate::key::{ConnectorKey, KeyError};
use crate::paths::Shares;
use crate::service::{Shared, Tunnel};
use crate::status::{Activity, Detail, Status};
use crate::tunnel::{self, Hello};

/// A tunnel up this long counts as healthy and resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The key could not be loaded or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A share is missing or not a folder.
    #[error("share: {0}")]
    Share(#[from] crate::paths::PathError),
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The home folder could not be created.
    #[error("agent home {0}: {1}")]
    Home(String, std::io::Error),
}

enum Command {
    Connect,
    Disconnect,
    Stop,
}

struct Inner {
    key: ConnectorKey,
    home: AgentHome,
    status: watch::Sender<Status>,
    activity: broadcast::Sender<Activity>,
    config: watch::Sender<Config>,
    shares: watch::Sender<Arc<Shares>>,
    commands: mpsc::Sender<Command>,
    stopped: watch::Sender<bool>,
    reads: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes of file content sent to Bifrost since start.
    sent: Arc<std::sync::atomic::AtomicU64>,
    /// When file content last moved (sampled every [`PROGRESS_EVERY`]).
    last_busy: std::sync::Mutex<Option<Instant>>,
    update_requests: mpsc::Sender<UpdateRequest>,
    /// Taken by whoever runs self-updates; still here means nobody does.
    update_receiver: std::sync::Mutex<Option<mpsc::Receiver<UpdateRequest>>>,
}

/// A request to check for an update now; the updater answers what it did, in words.
pub type UpdateRequest = oneshot::Sender<String>;

/// A handle to a running agent; cheap to clone.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

/// Prepares the key: loads or creates it; with `reset`, makes a new one and keeps the
/// old one aside so Bifrost can retire it on the next connection.
pub fn prepare_key(home: &AgentHome, reset: bool) -> Result<ConnectorKey, StartError> {
    home.create()
        .map_err(|e| StartError::Home(home.dir().display().to_string(), e))?;
    let path = home.key_file();
    if reset {
        if let Ok(old) = ConnectorKey::load_or_create(&path) {
            old.save(&home.previous_key_file())?;
        }
        let key = ConnectorKey::generate()?;
        key.save(&path)?;
        return Ok(key);
    }
    Ok(ConnectorKey::load_or_create(&path)?)
}

impl Agent {
    /// Starts the agent with `config`; it connects in the background.
    pub fn start(home: AgentHome, key: ConnectorKey, config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let shares = Shares::new(&config.shares)?;
        let relay = config.relay_addr()?;
        let initial = Status {
            online: false,
            detail: if relay.is_some() {
                Detail::Connecting
            } else {
                Detail::NotConfigured
            },
            relay_host: relay.as_ref().map(|r| r.host.clone()),
            relay_port: relay.as_ref().map(|r| r.port),
        };
        let (commands, rx) = mpsc::channel(16);
        let (update_requests, update_receiver) = mpsc::channel(4);
        let inner = Arc::new(Inner {
            key,
            home,
            status: watch::Sender::new(initial),
            activity: broadcast::Sender::new(1024),
            config: watch::Sender::new(config),
            shares: watch::Sender::new(Arc::new(shares)),
            commands,
            stopped: watch::Sender::new(false),
            reads: Arc::default(),
            sent: Arc::default(),
            last_busy: Default::default(),
            update_requests,
            update_receiver: std::sync::Mutex::new(Some(update_receiver)),
        });
        tokio::spawn(supervise(inner.clone(), rx));
        tokio::spawn(report_progress(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// The connector key (show it only where the user asked for it).
    pub fn key(&self) -> &ConnectorKey {
        &self.inner.key
    }

    /// The agent's home.
    pub fn home(&self) -> &AgentHome {
        &self.inner.home
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.inner.status.borrow().clone()
    }

    /// Watches the status.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.inner.status.subscribe()
    }

    /// Subscribes to the activity feed.
    pub fn subscribe(&self) -> broadcast::Receiver<Activity> {
        self.inner.activity.subscribe()
    }

    /// The config in force.
    pub fn config(&self) -> Config {
        self.inner.config.borrow().clone()
    }

    /// Applies a new config (new relay or shares) without a restart.
    pub fn reconfigure(&self, config: Config) -> Result<(), StartError> {
        config.validate()?;
        let shares = Shares::new(&config.shares)?;
        self.inner.shares.send_replace(Arc::new(shares));
        self.inner.config.send_replace(config);
        Ok(())
    }

    /// Asks the agent to connect (after a user's disconnect).
    pub async fn connect(&self) {
        let _ = self.inner.commands.send(Command::Connect).await;
    }

    /// Takes the tunnel down and keeps it down until [`Agent::connect`].
    pub async fn disconnect(&self) {
        let _ = self.inner.commands.send(Command::Disconnect).await;
    }

    /// Stops the agent.
    pub async fn stop(&self) {
        let _ = self.inner.commands.send(Command::Stop).await;
    }

    /// Files being read for Bifrost right now.
    pub fn reads_in_flight(&self) -> usize {
        self.inner.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether Bifrost is copying from this agent: a read is in flight or file content moved
    /// within `quiet` (between two files of a job no read may be in flight for a moment).
    pub fn transferring(&self, quiet: Duration) -> bool {
        if self.reads_in_flight() > 0 {
            return true;
        }
        let last = *self
            .inner
            .last_busy
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        last.is_some_and(|t| t.elapsed() < quiet)
    }

    /// Takes the queue of "check for an update now" requests; the self-updater calls this
    /// once. Without a taker, [`Agent::check_for_update`] says self-update is off.
    pub fn take_update_requests(&self) -> Option<mpsc::Receiver<UpdateRequest>> {
        self.inner
            .update_receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Asks the self-updater to check now and returns what it did; `None` when this agent
    /// does not update itself.
    pub async fn check_for_update(&self) -> Option<String> {
        let off = self
            .inner
            .update_receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if off {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.inner.update_requests.send(tx).await.ok()?;
        rx.await.ok()
    }

    /// Resolves once the agent has stopped.
    pub async fn stopped(&self) {
        let mut rx = self.inner.stopped.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

fn system_info() -> (String, String, String) {
    let info = os_info::get();
    let os = format!("{} {}", std::env::consts::OS, info.version());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    (crate::VERSION.to_owned(), os, host)
}

/// Jittered exponential backoff.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: BACKOFF_START,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_CAP);
        let mut b = [0u8; 2];
        let _ = getrandom::fill(&mut b);
        // Between 50% and 100% of the step, so many agents don't reconnect in lockstep.
        let frac = 0.5 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) / 2.0;
        base.mul_f64(frac)
    }
}

/// How long a stopping agent lets the reads in flight finish.
const DRAIN: Duration = Duration::from_secs(30);

/// Stopping with the tunnel up: refuses new reads and lets those in flight finish (at most
/// [`DRAIN`]), so a stop (SIGTERM, service stop, `agent stop`) costs Bifrost no half-sent file;
/// whatever is still in flight at the deadline is resumed by Bifrost later.
async fn drain<F: std::future::Future>(shared: &Shared, serving: &mut std::pin::Pin<&mut F>) {
    use std::sync::atomic::Ordering;
    shared.draining.store(true, Ordering::SeqCst);
    let reads = shared.reads.load(Ordering::SeqCst);
    if reads == 0 {
        return;
    }
    tracing::info!(
        reads,
        "stopping: letting the reads in flight finish (at most 30 s)"
    );
    let deadline = Instant::now() + DRAIN;
    while shared.reads.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::select! {
            _ = serving.as_mut() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    // The last frames are queued, not yet on the wire: give the connection a moment to send them.
    tokio::select! {
        _ = serving.as_mut() => {}
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    let left = shared.reads.load(Ordering::SeqCst);
    tracing::info!(
        left,
        "stopping: reads finished or left for Bifrost to resume"
    );
}

/// How often progress is reported while files are served.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Reports progress on the activity feed while files are being served, until the agent is gone.
async fn report_progress(inner: std::sync::Weak<Inner>) {
    use std::sync::atomic::Ordering;
    let mut last = 0u64;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let sent = inner.sent.load(Ordering::Relaxed);
        let reading = inner.reads.load(Ordering::SeqCst);
        if sent != last || reading > 0 {
            *inner.last_busy.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            let rate = (sent - last) as f64 / PROGRESS_EVERY.as_secs_f64();
            let _ = inner.activity.send(Activity::Progress {
                reading,
                sent,
                rate: rate as u64,
            });
        }
        last = sent;
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What an extra lane needs to dial and serve.
#[derive(Clone)]
struct Lane {
    config: Config,
    relay: crate::config::RelayAddr,
    key: ConnectorKey,
    version: String,
    host: String,
    os: String,
    tunnel_id: u64,
    tunnel: Tunnel,
}

/// Keeps `count` extra lanes open beside an authorized tunnel (Bifrost takes lanes only for
/// authorized connectors), reopening each that drops.
async fn keep_lanes(lane: Lane, count: usize) {
    let mut session = lane.tunnel.session.subscribe();
    if session
        .wait_for(|s| matches!(s, SessionState::Authorized { .. }))
        .await
        .is_err()
    {
        return;
    }
    let mut set = tokio::task::JoinSet::new();
    for n in 1..=count {
        set.spawn(one_lane(lane.clone(), n));
    }
    while set.join_next().await.is_some() {}
}

async fn one_lane(lane: Lane, n: usize) {
    let mut backoff = Backoff::new();
    loop {
        let hello = Hello {
            key: &lane.key,
            previous_key: None,
            version: &lane.version,
            host: &lane.host,
            os: &lane.os,
            lane_of: Some(lane.tunnel_id),
        };
        match tunnel::dial(&lane.config, &lane.relay, &hello).await {
            Ok(dialed) => {
                tracing::debug!(lane = n, "lane up");
                let started = Instant::now();
                let end = tunnel::serve(dialed.upgraded, lane.tunnel.clone()).await;
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                tracing::debug!(lane = n, error = ?end.err(), "lane down");
            }
            Err(tunnel::ConnectError::NoTunnel(why)) => {
                tracing::debug!(lane = n, %why, "no tunnel for this lane any more");
                return;
            }
            Err(e) => tracing::debug!(lane = n, error = %e, "cannot open a lane"),
        }
        tokio::time::sleep(backoff.delay()).await;
    }
}

enum Outcome {
    Continue,
    UserDisconnect,
    Stop,
}

async fn supervise(inner: Arc<Inner>, mut commands: mpsc::Receiver<Command>) {
    let (version, os, host) = system_info();
    let shared = Arc::new(Shared {
        shares: inner.shares.subscribe(),
        listings: Default::default(),
        activity: inner.activity.clone(),
        version: version.clone(),
        os: os.clone(),
        host: host.clone(),
        reads: inner.reads.clone(),
        sent: inner.sent.clone(),
        delta: Default::default(),
        draining: Default::default(),
    });
    let set = |online: bool, detail: Detail| {
        let config = inner.config.borrow().clone();
        let relay = config.relay_addr().ok().flatten();
        let status = Status {
            online,
            detail,
            relay_host: relay.as_ref().map(|r| r.host.clone()),
            relay_port: relay.as_ref().map(|r| r.port),
        };
        if *inner.status.borrow() != status {
            tracing::info!(online, detail = %status.detail, "status");
            inner.status.send_replace(status.clone());
            let _ = inner.activity.send(Activity::State(status));
        }
    };
    let mut backoff = Backoff::new();
    let mut user_disconnected = false;
    let mut config_rx = inner.config.subscribe();
    loop {
        if user_disconnected {
            set(false, Detail::DisconnectedByUser);
            match commands.recv().await {
                Some(Command::Connect) => {
                    user_disconnected = false;
                    backoff.reset();
                }
                Some(Command::Disconnect) => {}
                Some(Command::Stop) | None => break,
            }
            continue;
        }
        let config = config_rx.borrow_and_update().clone();
        let relay = match config.relay_addr() {
            Ok(Some(relay)) => relay,
            _ => {
                set(false, Detail::NotConfigured);
                tokio::select! {
                    cmd = commands.recv() => match handle_idle(cmd) {
                        Outcome::Stop => break,
                        Outcome::UserDisconnect => user_disconnected = true,
                        Outcome::Continue => {}
                    },
                    _ = config_rx.changed() => {}
                }
                continue;
            }
        };
        if !matches!(
            inner.status.borrow().detail,
            Detail::CannotReach { .. }
                | Detail::Proxy { .. }
                | Detail::CertificateRejected { .. }
                | Detail::Revoked
                | Detail::Replaced
                | Detail::Failed { .. }
        ) {
            set(false, Detail::Connecting);
        }
        let previous = std::fs::read_to_string(inner.home.previous_key_file())
            .ok()
            .and_then(|k| ConnectorKey::parse(k.trim()));
        let hello = Hello {
            key: &inner.key,
            previous_key: previous.as_ref(),
            version: &version,
            host: &host,
            os: &os,
            lane_of: None,
        };
        let dialed = tokio::select! {
            r = tunnel::dial(&config, &relay, &hello) => r,
            cmd = commands.recv() => {
                match handle_idle(cmd) {
                    Outcome::Stop => break,
                    Outcome::UserDisconnect => user_disconnected = true,
                    Outcome::Continue => {}
                }
                continue;
            }
        };
        match dialed {
            Ok(tunnel::Dialed {
                upgraded,
                session: first_session,
                lanes,
            }) => {
                if previous.is_some() {
                    // Bifrost has seen the old key with this one, and retired it.
                    let _ = std::fs::remove_file(inner.home.previous_key_file());
                }
                tracing::info!(relay = %relay, "tunnel up");
                let session = watch::Sender::new(first_session);
                let mut session_rx = session.subscribe();
                session_rx.mark_changed();
                let tunnel = Tunnel {
                    shared: shared.clone(),
                    session,
                };
                let started = Instant::now();
                // Dropped (and so aborted) with this tunnel.
                let _lanes = lanes
                    .map(|(id, offered)| (id, offered.min(config.tunnel_count() - 1)))
                    .filter(|(_, n)| *n > 0)
                    .map(|(id, n)| {
                        let lane = Lane {
                            config: config.clone(),
                            relay: relay.clone(),
                            key: inner.key.clone(),
                            version: version.clone(),
                            host: host.clone(),
                            os: os.clone(),
                            tunnel_id: id,
                            tunnel: tunnel.clone(),
                        };
                        AbortOnDrop(tokio::spawn(keep_lanes(lane, n)))
                    });
                let serving = tunnel::serve(upgraded, tunnel);
                tokio::pin!(serving);
                let mut outcome = Outcome::Continue;
                let end = loop {
                    tokio::select! {
                        r = &mut serving => break r.err().map(|e| e.to_string()),
                        Ok(()) = session_rx.changed() => {
                            let detail = match &*session_rx.borrow_and_update() {
                                SessionState::Waiting => Detail::Waiting,
                                SessionState::Authorized { name } => Detail::Authorized { name: name.clone() },
                                SessionState::Revoked => Detail::Revoked,
                                SessionState::Replaced => Detail::Replaced,
                            };
                            let online = !matches!(detail, Detail::Revoked | Detail::Replaced);
                            set(online, detail);
                        }
                        cmd = commands.recv() => {
                            outcome = handle_idle(cmd);
                            if matches!(outcome, Outcome::Stop) {
                                drain(&shared, &mut serving).await;
                            }
                            if !matches!(outcome, Outcome::Continue) { break None; }
                        }
                        Ok(()) = config_rx.changed() => {
                            if config_rx.borrow().relay_addr().ok().flatten() != Some(relay.clone()) { break None; }
                        }
                    }
                };
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                match outcome {
                    Outcome::Stop => break,
                    Outcome::UserDisconnect => {
                        user_disconnected = true;
                        continue;
                    }
                    Outcome::Continue => {}
                }
                let last = session_rx.borrow().clone();
                let detail = if last == SessionState::Revoked {
                    Detail::Revoked
                } else if last == SessionState::Replaced {
                    // Two agents with one key would otherwise take turns replacing each other.
                    backoff.next = BACKOFF_CAP;
                    Detail::Replaced
                } else {
                    Detail::Failed {
                        reason: format!(
                            "connection to Bifrost lost{}",
                            end.map(|e| format!(": {e}")).unwrap_or_default()
                        ),
                    }
                };
                tracing::warn!(detail = %detail, "tunnel down");
                set(false, detail);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open tunnel");
                set(false, e.detail());
            }
        }
        let delay = backoff.delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            cmd = commands.recv() => match handle_idle(cmd) {
                Outcome::Stop => break,
                Outcome::UserDisconnect => user_disconnected = true,
                Outcome::Continue => backoff.reset(),
            },
            Ok(()) = config_rx.changed() => backoff.reset(),
        }
    }
    set(
        false,
        Detail::Failed {
            reason: "agent stopped".into(),
        },
    );
    inner.stopped.send_replace(true);
}

fn handle_idle(cmd: Option<Command>) -> Outcome {
    match cmd {
        Some(Command::Connect) => Outcome::Continue,
        Some(Command::Disconnect) => Outcome::UserDisconnect,
        Some(Command::Stop) | None => Outcome::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new();
        let first = b.delay();
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        for _ in 0..20 {
            assert!(b.delay() <= BACKOFF_CAP);
        }
        assert!(b.delay() >= BACKOFF_CAP / 2);
        b.reset();
        assert!(b.delay() <= Duration::from_secs(1));
    }
}
