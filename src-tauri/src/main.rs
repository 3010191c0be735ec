//! The Mover Agent desktop app's entry point.
// No console window on Windows release builds.
#![cfg_attr(all(not(debug_assertions), windows), windows_subsystem = "windows")]
#![forbid(unsafe_code)]

fn main() {
    mover_desktop::updates::wait_for_previous_instance();
    let trial = mover_desktop::updates::recover_at_start();
    mover_desktop::run(trial);
}
