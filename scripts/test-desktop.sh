#!/usr/bin/env bash
# The desktop app's end-to-end tests under Xvfb with a dbus session: WebDriver (tauri-driver +
# WebKitWebDriver) reads the window, xdotool drives the GTK menu, xclip reads the clipboard,
# dbus-send clicks the tray menu. Installs what it needs (Debian packages, tauri-driver).
# scripts/test.sh runs it after the other end-to-end tests; it also runs on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mover-target}"
export MOVER_TOOLS="${MOVER_TOOLS:-$HOME/.cache/mover-tools}"
need=()
for pkg in xvfb xauth xdotool xclip dbus dbus-x11 at-spi2-core webkit2gtk-driver imagemagick; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; fi
[ -x "$MOVER_TOOLS/bin/tauri-driver" ] || cargo install tauri-driver --locked --root "$MOVER_TOOLS"
cargo build --workspace --bins
(cd tests/console && npm ci --no-audit --no-fund --loglevel=error)
cd tests/desktop && npm test
