//! Generates the Tauri context (config, icons, capabilities) for the desktop app.
fn main() {
    tauri_build::build()
}
