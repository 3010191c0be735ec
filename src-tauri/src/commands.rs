//! Tauri commands: thin, each hands its request to the controller or reads the view.

use tauri::{AppHandle, Manager, State};
use tokio::sync::oneshot;

use crate::controller::{Request, Shared, View};

async fn send(shared: &Shared, request: Request) -> Result<(), String> {
    shared
        .tx
        .send(request)
        .await
        .map_err(|_| "the app is shutting down".to_owned())
}

/// The current view.
#[tauri::command]
pub fn view(shared: State<'_, Shared>) -> View {
    shared.view()
}

/// Connect to Bifrost after a disconnect.
#[tauri::command]
pub async fn connect(shared: State<'_, Shared>) -> Result<(), String> {
    send(&shared, Request::Connect).await
}

/// Disconnect from Bifrost.
#[tauri::command]
pub async fn disconnect(shared: State<'_, Shared>) -> Result<(), String> {
    send(&shared, Request::Disconnect).await
}

/// Save Bifrost's address and, optionally, its certificate fingerprint.
#[tauri::command]
pub async fn save_relay(
    shared: State<'_, Shared>,
    url: String,
    fingerprint: Option<String>,
) -> Result<(), String> {
    let (reply, rx) = oneshot::channel();
    send(
        &shared,
        Request::SaveRelay {
            url,
            fingerprint,
            reply,
        },
    )
    .await?;
    rx.await
        .map_err(|_| "the app is shutting down".to_owned())?
}

/// Put the connector key on the clipboard.
#[tauri::command]
pub fn copy_key(app: AppHandle) -> Result<(), String> {
    crate::copy_key(&app)
}

/// Open the log folder in the file manager.
#[tauri::command]
pub fn open_log_folder(app: AppHandle) -> Result<(), String> {
    crate::open_log_folder(&app.state::<Shared>().view().log_dir)
}

/// Turn start on login on or off.
#[tauri::command]
pub async fn set_start_on_login(shared: State<'_, Shared>, on: bool) -> Result<(), String> {
    send(&shared, Request::StartOnLogin(on)).await
}
