//! The one task that owns the agent runtime for the app: it turns runtime events into the window's
//! view, the menus and the tray, and carries out what the window and menus ask for.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mover_agent::{Activity, Agent, Detail};
use serde::Serialize;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem};
use tauri::{AppHandle, Emitter, Manager, Wry};
use tokio::sync::{mpsc, oneshot};

use crate::menu::{self, MenuState};

/// Lines of activity the window keeps.
const ACTIVITY_LINES: usize = 200;
/// "Transferring" lasts this long after the last file served.
const TRANSFER_LINGER: Duration = Duration::from_secs(5);
/// The tray's id.
pub const TRAY: &str = "main";

/// What the window shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    /// The connector key (the window is a place the user asked to see it).
    pub key: String,
    /// Tunnel up.
    pub online: bool,
    /// "online" / "offline".
    pub status: String,
    /// Why.
    pub detail: String,
    /// Bifrost's address, when configured.
    pub relay: Option<String>,
    /// No address yet: the window asks for one.
    pub needs_relay: bool,
    /// Recent `Browse:` / `Upload:` lines, oldest first.
    pub activity: Vec<String>,
    /// Files served since the app started.
    pub served: u64,
    /// Serving files right now.
    pub transferring: bool,
    /// The latest progress line while files are served.
    pub progress: String,
    /// App version.
    pub version: String,
    /// OS and version.
    pub os: String,
    /// Where the logs are.
    pub log_dir: String,
    /// Start on login is on.
    pub start_on_login: bool,
    /// How the app updates itself, and what the last check found.
    pub updates: String,
    /// A problem starting the agent, shown instead of a status.
    pub error: Option<String>,
}

/// Requests from commands and menus.
pub enum Request {
    Connect,
    Disconnect,
    Toggle,
    SaveRelay {
        url: String,
        fingerprint: Option<String>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    StartOnLogin(bool),
    /// The update loop's latest word.
    Updates(String),
    Quit,
}

/// State shared with commands and menu handlers.
pub struct Shared {
    /// The current view.
    pub view: Mutex<View>,
    /// Requests to the controller.
    pub tx: mpsc::Sender<Request>,
    /// Kept alive so the key stays on the X11 clipboard after Copy Key.
    pub clipboard: Mutex<Option<arboard::Clipboard>>,
    /// The File menu's connect/disconnect item.
    pub toggle: MenuItem<Wry>,
    /// The tray's menu, updated in place.
    pub tray_menu: Menu<Wry>,
}

impl Shared {
    /// A copy of the view.
    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn tray_icon(state: &MenuState, online: bool) -> Option<Image<'static>> {
    let bytes: &'static [u8] = if state.transferring {
        include_bytes!("../../icons/tray-transferring.png")
    } else if online {
        include_bytes!("../../icons/tray-online.png")
    } else {
        include_bytes!("../../icons/tray-offline.png")
    };
    Image::from_bytes(bytes).ok()
}

/// Pushes the view to the window, the menus and the tray.
fn publish(app: &AppHandle, view: &View) {
    *app.state::<Shared>()
        .view
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = view.clone();
    let _ = app.emit("view", view);
    let state = MenuState {
        word: view.status.clone(),
        detail: view.detail.clone(),
        disconnected_by_user: view.detail == Detail::DisconnectedByUser.to_string(),
        start_on_login: view.start_on_login,
        transferring: view.transferring,
    };
    let online = view.online;
    // Menus and the tray belong to the main thread: post the changes there rather than have
    // this task wait for the main thread, which may itself be busy in a menu handler.
    let handle = app.clone();
    let posted = app.run_on_main_thread(move || {
        let shared = handle.state::<Shared>();
        let _ = shared.toggle.set_text(format!(
            "&{}",
            menu::toggle_label(state.disconnected_by_user)
        ));
        if let Some(tray) = handle.tray_by_id(TRAY) {
            let _ = tray.set_tooltip(Some(menu::tooltip(&state)));
            let _ = tray.set_icon(tray_icon(&state, online));
        }
        if let Err(e) = menu::update(&shared.tray_menu, &menu::tray_entries(&state)) {
            tracing::warn!(error = %e, "cannot update the tray menu");
        }
    });
    if let Err(e) = posted {
        tracing::warn!(error = %e, "cannot update the menus");
    }
}

fn apply_status(view: &mut View, agent: &Agent) {
    let status = agent.status();
    view.online = status.online;
    view.status = status.word().to_owned();
    view.detail = status.detail.to_string();
    view.needs_relay = status.detail == Detail::NotConfigured;
    view.relay = agent.config().relay;
}

/// Runs the controller until Quit.
pub async fn run(
    app: AppHandle,
    agent: Option<Agent>,
    mut view: View,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut activity: VecDeque<String> = VecDeque::with_capacity(ACTIVITY_LINES);
    let mut last_upload: Option<Instant> = None;
    let (mut status_rx, mut feed) = match &agent {
        Some(a) => (Some(a.watch_status()), Some(a.subscribe())),
        None => (None, None),
    };
    if let Some(a) = &agent {
        apply_status(&mut view, a);
    }
    publish(&app, &view);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            Some(changed) = async { match status_rx.as_mut() { Some(rx) => Some(rx.changed().await), None => None } } => {
                if changed.is_err() { status_rx = None; continue; }
                if let Some(a) = &agent { apply_status(&mut view, a); }
            }
            Some(event) = async { match feed.as_mut() { Some(f) => Some(f.recv().await), None => None } } => {
                match event {
                    Ok(Activity::State(_)) => continue,
                    Ok(progress @ Activity::Progress { .. }) => view.progress = progress.to_string(),
                    Ok(line) => {
                        if matches!(line, Activity::Upload { .. }) {
                            view.served += 1;
                            last_upload = Some(Instant::now());
                        }
                        if activity.len() == ACTIVITY_LINES { activity.pop_front(); }
                        activity.push_back(line.to_string());
                        view.activity = activity.iter().cloned().collect();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => { feed = None; continue; }
                }
            }
            _ = tick.tick() => {}
            request = rx.recv() => {
                let Some(request) = request else { return };
                match (request, &agent) {
                    (Request::Quit, agent) => {
                        if let Some(a) = agent { a.stop().await; a.stopped().await; }
                        app.exit(0);
                        return;
                    }
                    (Request::Updates(line), _) => view.updates = line,
                    (Request::StartOnLogin(on), _) => view.start_on_login = crate::autostart::set(&app, on),
                    (Request::SaveRelay { reply, .. }, None) => { let _ = reply.send(Err("the agent is not running".into())); }
                    (_, None) => {}
                    (Request::Connect, Some(a)) => a.connect().await,
                    (Request::Disconnect, Some(a)) => a.disconnect().await,
                    (Request::Toggle, Some(a)) => {
                        if a.status().detail == Detail::DisconnectedByUser { a.connect().await } else { a.disconnect().await }
                    }
                    (Request::SaveRelay { url, fingerprint, reply }, Some(a)) => {
                        let _ = reply.send(save_relay(a, url, fingerprint));
                    }
                }
                if let Some(a) = &agent { apply_status(&mut view, a); }
            }
        }
        let transferring = last_upload.is_some_and(|t| t.elapsed() < TRANSFER_LINGER);
        let changed = transferring != view.transferring || shared_differs(&app, &view);
        view.transferring = transferring;
        if changed {
            publish(&app, &view);
        }
    }
}

fn shared_differs(app: &AppHandle, view: &View) -> bool {
    let shared = app.state::<Shared>();
    let current = shared.view.lock().unwrap_or_else(|e| e.into_inner());
    serde_json::to_value(&*current).ok() != serde_json::to_value(view).ok()
}

/// Saves a Bifrost address (and optional pin) to the agent's config and applies it.
fn save_relay(agent: &Agent, url: String, fingerprint: Option<String>) -> Result<(), String> {
    let mut config = agent.config();
    config.relay = Some(url.trim().to_owned());
    config.relay_fingerprint = fingerprint
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty());
    if config.relay_fingerprint.is_some() {
        config.relay_ca = None;
    }
    config.validate().map_err(|e| e.to_string())?;
    config
        .save(&agent.home().config_file())
        .map_err(|e| e.to_string())?;
    agent.reconfigure(config).map_err(|e| e.to_string())
}
