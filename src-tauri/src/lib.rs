//! The Mover Agent desktop app: a tray app that runs the agent runtime in-process, as the user.
#![forbid(unsafe_code)]

mod commands;
mod controller;
pub mod menu;
pub mod updates;

use std::sync::Mutex;

use mover_agent::control::{self, Client};
use mover_agent::{Agent, AgentHome, Config};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, WindowEvent};
use tokio::sync::mpsc;

use controller::{Request, Shared, View, TRAY};

/// Start on login: on by default the first time, then as the user leaves it.
mod autostart {
    use tauri::AppHandle;
    use tauri_plugin_autostart::ManagerExt;

    fn marker(app: &AppHandle) -> Option<std::path::PathBuf> {
        mover_agent::AgentHome::from_env()
            .ok()
            .map(|h| h.dir().join("desktop-autostart-chosen"))
            .or_else(|| {
                app.path()
                    .app_config_dir()
                    .ok()
                    .map(|d| d.join("autostart-chosen"))
            })
    }

    use tauri::Manager;

    /// Turns start on login on or off; returns what is in force.
    pub fn set(app: &AppHandle, on: bool) -> bool {
        let launcher = app.autolaunch();
        let result = if on {
            launcher.enable()
        } else {
            launcher.disable()
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, on, "cannot change start on login");
        }
        if let Some(m) = marker(app) {
            let _ = std::fs::write(m, if on { "on\n" } else { "off\n" });
        }
        launcher.is_enabled().unwrap_or(on)
    }

    /// What is in force at start, turning it on the first time.
    pub fn initial(app: &AppHandle) -> bool {
        match marker(app) {
            Some(m) if !m.exists() => set(app, true),
            _ => app.autolaunch().is_enabled().unwrap_or(false),
        }
    }
}

/// Puts the key on the clipboard, keeping the clipboard owner alive (X11 needs it).
fn copy_key(app: &AppHandle) -> Result<(), String> {
    let shared = app.state::<Shared>();
    let key = shared.view().key;
    if key.is_empty() {
        return Err("the agent has no key yet".into());
    }
    let mut slot = shared.clipboard.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        *slot = Some(
            arboard::Clipboard::new().map_err(|e| format!("cannot reach the clipboard: {e}"))?,
        );
    }
    let clipboard = slot.as_mut().ok_or("no clipboard")?;
    clipboard
        .set_text(key)
        .map_err(|e| format!("cannot copy the key: {e}"))?;
    tracing::info!("connector key copied to the clipboard");
    Ok(())
}

/// Opens a folder in the platform's file manager.
fn open_log_folder(dir: &str) -> Result<(), String> {
    let opener = if cfg!(windows) {
        "explorer"
    } else if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(dir)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot open {dir}: {e}"))
}

fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Starts the agent runtime in this process, unless an agent already runs in this home.
async fn start_agent(home: AgentHome) -> Result<Agent, String> {
    if Client::connect(&home.control_endpoint()).await.is_ok() {
        return Err(format!(
            "Another Mover Agent is running for this user (home {}). Stop it (agent stop) and reopen the app.",
            home.dir().display()
        ));
    }
    let config = Config::load(&home.config_file()).map_err(|e| e.to_string())?;
    let key = mover_agent::prepare_key(&home, false).map_err(|e| e.to_string())?;
    let agent = Agent::start(home, key, config).map_err(|e| e.to_string())?;
    // `agent status` and friends reach the app's runtime over the same control channel.
    control::serve(agent.clone())
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = mover_agent::live_config::watch(&agent) {
        tracing::warn!(error = %e, "cannot watch the config file");
    }
    Ok(agent)
}

fn on_menu(app: &AppHandle, id: &str) {
    let shared = app.state::<Shared>();
    let send = |r: Request| {
        let tx = shared.tx.clone();
        tauri::async_runtime::spawn(async move {
            let _ = tx.send(r).await;
        });
    };
    match id {
        menu::id::COPY_KEY => {
            if let Err(e) = copy_key(app) {
                tracing::warn!(error = %e, "copy key");
            }
        }
        menu::id::HELP | menu::id::ABOUT => {
            show_window(app);
            let _ = app.emit("about", ());
        }
        menu::id::TOGGLE => send(Request::Toggle),
        menu::id::QUIT => send(Request::Quit),
        menu::id::LOG_FOLDER => {
            if let Err(e) = open_log_folder(&shared.view().log_dir) {
                tracing::warn!(error = %e, "show log folder");
            }
        }
        menu::id::OPEN => show_window(app),
        menu::id::START_ON_LOGIN => send(Request::StartOnLogin(!shared.view().start_on_login)),
        _ => {}
    }
}

/// Runs the app; `trial` when this process is an update on trial (see `updates`).
pub fn run(trial: Option<mover_agent::update::Trial>) {
    let result = tauri::Builder::default()
        // First, so a second launch is handed to this one before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            show_window(app)
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--minimized"]),
        ))
        .setup(|app| {
            let handle = app.handle().clone();
            let home = AgentHome::from_env()?;
            home.create()?;
            let guard = mover_agent::logging::init(home.log_dir(), "desktop")?;
            app.manage(Mutex::new(Some(guard)));
            let (menu, toggle) = menu::app_menu(&handle)?;
            app.set_menu(menu)?;
            // One handler for both menus: Tauri hands tray menu events to app-level listeners
            // too, so a second handler on the tray would run every click twice.
            app.on_menu_event(|app, event| on_menu(app, event.id().as_ref()));
            let tray_menu = menu::build(
                &handle,
                &menu::tray_entries(&menu::MenuState {
                    word: "offline".into(),
                    detail: "starting".into(),
                    disconnected_by_user: false,
                    start_on_login: false,
                    transferring: false,
                }),
            )?;
            TrayIconBuilder::with_id(TRAY)
                .icon(tauri::image::Image::from_bytes(include_bytes!(
                    "../../icons/tray-offline.png"
                ))?)
                .tooltip("Mover Agent")
                .menu(&tray_menu)
                .build(app)?;
            let (tx, rx) = mpsc::channel(32);
            app.manage(Shared {
                view: Mutex::new(View::default()),
                tx,
                clipboard: Mutex::new(None),
                toggle,
                tray_menu,
            });
            let mut view = View {
                version: mover_agent::VERSION.to_owned(),
                os: mover_agent::os_description(),
                log_dir: home.log_dir().display().to_string(),
                start_on_login: autostart::initial(&handle),
                ..View::default()
            };
            let agent = match tauri::async_runtime::block_on(start_agent(home)) {
                Ok(agent) => {
                    view.key = agent.key().expose().to_owned();
                    tracing::info!(key = %agent.key(), "desktop app started the agent");
                    Some(agent)
                }
                Err(e) => {
                    tracing::error!(error = %e, "the agent could not start");
                    view.error = Some(e);
                    None
                }
            };
            if let Some(a) = &agent {
                tauri::async_runtime::spawn(updates::run(handle.clone(), a.clone()));
            }
            match (trial, &agent) {
                (Some(t), Some(a)) => {
                    tauri::async_runtime::spawn(updates::prove(handle.clone(), a.clone(), t));
                }
                // An update whose agent cannot even start failed its trial.
                (Some(t), None) => {
                    if let Err(e) = t.roll_back() {
                        tracing::error!(error = %e, "rolling back the update");
                    }
                }
                (None, _) => {}
            }
            tauri::async_runtime::spawn(controller::run(handle.clone(), agent, view, rx));
            if std::env::args().any(|a| a == "--minimized") {
                if let Some(w) = app.get_webview_window("main") {
                    let _ = w.hide();
                }
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps the agent running in the tray.
            if let WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::view,
            commands::connect,
            commands::disconnect,
            commands::save_relay,
            commands::copy_key,
            commands::open_log_folder,
            commands::set_start_on_login,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("error: Mover Agent could not start: {e}");
        std::process::exit(1);
    }
}
