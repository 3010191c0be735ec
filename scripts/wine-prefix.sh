#!/usr/bin/env bash
# Makes (or reuses) a 64-bit Wine prefix for the Windows tests and puts the test-only
# bcryptprimitives.dll stand-in (tests/wine/processprng.c) in its system32, so Rust programs
# start under Wine 8. Usage: scripts/wine-prefix.sh DIR. Prints nothing on success but the prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:?usage: scripts/wine-prefix.sh DIR}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
export WINEPREFIX="$prefix" WINEDEBUG=-all WINEARCH=win64 WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$prefix/system.reg" ]; then
  # No display: wineboot must not try to show dialogs (Gecko/Mono prompts are off above).
  DISPLAY= wineboot -i >/dev/null 2>&1
  wineserver -w
fi
sys32="$prefix/drive_c/windows/system32"
dll="$sys32/bcryptprimitives.dll"
if [ ! -f "$dll" ] || [ tests/wine/processprng.c -nt "$dll" ]; then
  tmp="$(mktemp -d)"
  x86_64-w64-mingw32-gcc -O2 -shared -o "$tmp/bcryptprimitives.dll" tests/wine/processprng.c \
    tests/wine/processprng.def -ladvapi32
  cp "$tmp/bcryptprimitives.dll" "$dll"
  rm -rf "$tmp"
fi
echo "$prefix"
