//! Menus as plain data: the tray menu is built from the app's state by a pure function, so tests
//! can compare it; small adapters turn the data into Tauri menus.

use tauri::menu::{
    CheckMenuItem, IsMenuItem, Menu, MenuItem, MenuItemKind, PredefinedMenuItem, Submenu,
};
use tauri::{AppHandle, Runtime};

/// Menu item ids, shared by the app menu, the tray menu and the event handler.
pub mod id {
    pub const COPY_KEY: &str = "copy_key";
    pub const HELP: &str = "help";
    pub const ABOUT: &str = "about";
    pub const TOGGLE: &str = "toggle_connection";
    pub const QUIT: &str = "quit";
    pub const LOG_FOLDER: &str = "log_folder";
    pub const OPEN: &str = "open";
    pub const START_ON_LOGIN: &str = "start_on_login";
    pub const STATUS: &str = "status";
}

/// What the menus show of the app's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuState {
    /// "online" or "offline".
    pub word: String,
    /// Why: "authorized as …", "disconnected by user", …
    pub detail: String,
    /// The user asked to disconnect (the toggle then offers Connect).
    pub disconnected_by_user: bool,
    /// Start on login is on.
    pub start_on_login: bool,
    /// Files are being served right now.
    pub transferring: bool,
}

/// One tray menu entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A line of text that cannot be clicked.
    Label { id: &'static str, text: String },
    /// A clickable item.
    Item { id: &'static str, text: String },
    /// A check item.
    Check {
        id: &'static str,
        text: String,
        checked: bool,
    },
    /// A separator.
    Separator,
}

/// The label of the connect/disconnect item, as SPEC §4 words it.
pub fn toggle_label(disconnected_by_user: bool) -> &'static str {
    if disconnected_by_user {
        "Connect to Mover"
    } else {
        "Disconnect from Mover"
    }
}

/// The tray menu for a state.
pub fn tray_entries(s: &MenuState) -> Vec<Entry> {
    let status = if s.transferring {
        format!("Mover Agent: {} (transferring)", s.word)
    } else {
        format!("Mover Agent: {} ({})", s.word, s.detail)
    };
    vec![
        Entry::Label {
            id: id::STATUS,
            text: status,
        },
        Entry::Separator,
        Entry::Item {
            id: id::OPEN,
            text: "Open".into(),
        },
        Entry::Item {
            id: id::TOGGLE,
            text: toggle_label(s.disconnected_by_user).into(),
        },
        Entry::Check {
            id: id::START_ON_LOGIN,
            text: "Start on login".into(),
            checked: s.start_on_login,
        },
        Entry::Separator,
        Entry::Item {
            id: id::QUIT,
            text: "Quit".into(),
        },
    ]
}

/// The tray tooltip for a state.
pub fn tooltip(s: &MenuState) -> String {
    if s.transferring {
        "Mover Agent: transferring".into()
    } else {
        format!("Mover Agent: {} ({})", s.word, s.detail)
    }
}

/// Builds a Tauri menu from entries.
pub fn build<R: Runtime>(app: &AppHandle<R>, entries: &[Entry]) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    for e in entries {
        match e {
            Entry::Label { id, text } => {
                menu.append(&MenuItem::with_id(app, *id, text, false, None::<&str>)?)?
            }
            Entry::Item { id, text } => {
                menu.append(&MenuItem::with_id(app, *id, text, true, None::<&str>)?)?
            }
            Entry::Check { id, text, checked } => menu.append(&CheckMenuItem::with_id(
                app,
                *id,
                text,
                true,
                *checked,
                None::<&str>,
            )?)?,
            Entry::Separator => menu.append(&PredefinedMenuItem::separator(app)?)?,
        }
    }
    Ok(menu)
}

/// Updates a menu built by [`build`] in place (labels and checks), which tray hosts pick up
/// more reliably than a replaced menu.
pub fn update<R: Runtime>(menu: &Menu<R>, entries: &[Entry]) -> tauri::Result<()> {
    for e in entries {
        match e {
            Entry::Label { id, text } | Entry::Item { id, text } => {
                if let Some(MenuItemKind::MenuItem(item)) = menu.get(*id) {
                    if item.text()? != *text {
                        item.set_text(text)?;
                    }
                }
            }
            Entry::Check { id, text, checked } => {
                if let Some(MenuItemKind::Check(item)) = menu.get(*id) {
                    if item.text()? != *text {
                        item.set_text(text)?;
                    }
                    if item.is_checked()? != *checked {
                        item.set_checked(*checked)?;
                    }
                }
            }
            Entry::Separator => {}
        }
    }
    Ok(())
}

/// The window's menu bar: File (Copy Key, Help, Disconnect from Mover, Quit) and Help (About
/// Mover Agent, Show Log Folder). Returns it with the toggle item, whose label changes.
pub fn app_menu<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<(Menu<R>, MenuItem<R>)> {
    let copy = MenuItem::with_id(
        app,
        id::COPY_KEY,
        "Copy &Key",
        true,
        Some("CmdOrCtrl+Shift+K"),
    )?;
    let help = MenuItem::with_id(app, id::HELP, "&Help", true, None::<&str>)?;
    let toggle = MenuItem::with_id(
        app,
        id::TOGGLE,
        "&Disconnect from Mover",
        true,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, id::QUIT, "&Quit", true, Some("CmdOrCtrl+Q"))?;
    let sep = PredefinedMenuItem::separator(app)?;
    let file_items: [&dyn IsMenuItem<R>; 5] = [&copy, &help, &toggle, &sep, &quit];
    let file = Submenu::with_items(app, "&File", true, &file_items)?;
    let about = MenuItem::with_id(app, id::ABOUT, "&About Mover Agent", true, None::<&str>)?;
    let logs = MenuItem::with_id(app, id::LOG_FOLDER, "Show &Log Folder", true, None::<&str>)?;
    let help_menu =
        Submenu::with_items(app, "&Help", true, &[&about as &dyn IsMenuItem<R>, &logs])?;
    let menu = Menu::with_items(app, &[&file as &dyn IsMenuItem<R>, &help_menu])?;
    Ok((menu, toggle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> MenuState {
        MenuState {
            word: "online".into(),
            detail: "authorized as fs1".into(),
            disconnected_by_user: false,
            start_on_login: true,
            transferring: false,
        }
    }

    #[test]
    fn tray_menu_follows_the_state() {
        let online = tray_entries(&state());
        assert_eq!(
            online[0],
            Entry::Label {
                id: id::STATUS,
                text: "Mover Agent: online (authorized as fs1)".into()
            }
        );
        assert!(online.contains(&Entry::Item {
            id: id::TOGGLE,
            text: "Disconnect from Mover".into()
        }));
        assert!(online.contains(&Entry::Check {
            id: id::START_ON_LOGIN,
            text: "Start on login".into(),
            checked: true
        }));
        assert_eq!(
            online.last(),
            Some(&Entry::Item {
                id: id::QUIT,
                text: "Quit".into()
            })
        );

        let off = MenuState {
            word: "offline".into(),
            detail: "disconnected by user".into(),
            disconnected_by_user: true,
            start_on_login: false,
            ..state()
        };
        let entries = tray_entries(&off);
        assert!(entries.contains(&Entry::Item {
            id: id::TOGGLE,
            text: "Connect to Mover".into()
        }));
        assert!(entries.contains(&Entry::Check {
            id: id::START_ON_LOGIN,
            text: "Start on login".into(),
            checked: false
        }));
        assert_eq!(tooltip(&off), "Mover Agent: offline (disconnected by user)");

        let busy = MenuState {
            transferring: true,
            ..state()
        };
        assert_eq!(tooltip(&busy), "Mover Agent: transferring");
        assert_eq!(
            tray_entries(&busy)[0],
            Entry::Label {
                id: id::STATUS,
                text: "Mover Agent: online (transferring)".into()
            }
        );
    }
}
