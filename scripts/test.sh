#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests, the Windows type-check,
# the demo, the API fuzzed against its OpenAPI description, the desktop app under Xvfb and the
# packages (built, installed, signed). It installs what it needs first (scripts/setup,
# idempotent), so it runs on a fresh Debian 12 machine; .ci/run only calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mover-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }

step "setup: install what a fresh Debian 12 machine lacks (scripts/setup)"
scripts/setup
step "setup again: it must find nothing left to install"
again=$(scripts/setup)
echo "$again"
[ "$again" = "setup: nothing to install" ]

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "build the binaries the end-to-end tests run (the desktop app too)"
cargo build --workspace --bins
step "Windows type-check and lints (x86_64-pc-windows-gnu)"
cargo clippy --target x86_64-pc-windows-gnu -p mover-proto -p mover-agent -p mover-agent-cli -p mover-desktop -- -D warnings
step "the demo, once through"
scripts/demo.sh --once
step "the API against its OpenAPI description (schemathesis: no 5xx, answers match the schema, nothing it forbids accepted)"
scripts/schemathesis.sh
step "console tests in Chromium (Playwright)"
(cd tests/console && npm ci --no-audit --no-fund --loglevel=error && npm test)
step "desktop app under Xvfb (WebDriver, xdotool, xclip, dbus-send)"
scripts/test-desktop.sh
step "packages: build, inspect, install, run, sign and verify (scripts/test-packages.sh)"
scripts/test-packages.sh
step "tests (unit and end-to-end)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
