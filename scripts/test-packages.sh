#!/usr/bin/env bash
# The packages, end to end: builds all of them with scripts/package (release), checks each .deb's
# control fields and files, installs the bifrost and agent .debs on this machine with dpkg (root;
# CI is such a machine), checks their users and units (systemd-analyze verify), runs the
# installed bifrost and reaches its console, purges both again, checks the archives' layouts,
# then makes a signed release with a throwaway key and checks that every signature verifies and
# that a flipped byte, another file name or another key does not.
# scripts/test.sh runs it before the Rust tests; it also runs alone. First builds take minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mover-target}"
export MOVER_TOOLS="${MOVER_TOOLS:-$HOME/.cache/mover-tools}"
export PATH="$MOVER_TOOLS/bin:$PATH"

fail() { printf '\ntest-packages: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { echo "  ok: $*"; }
section() { printf '\n-- %s\n' "$*"; }

[ "$(id -u)" = 0 ] || fail "run as root: this test installs and purges .debs with dpkg"
for pkg in bifrost mover-agent-cli; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ $status == *"ok installed"* ]]; then
    fail "$pkg is already installed on this machine; the test installs and purges it (dpkg -P $pkg first)"
  fi
done
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --root "$MOVER_TOOLS"
command -v zipsign >/dev/null || cargo install zipsign --locked --root "$MOVER_TOOLS"

work=$(mktemp -d /tmp/mover-packages.XXXXXX)
installed=() made_users=() made_dirs=() bifrost_pid="" bifrost_data=""
cleanup() {
  local rc=$?
  if [ -n "$bifrost_pid" ]; then kill "$bifrost_pid" 2>/dev/null || true; wait "$bifrost_pid" 2>/dev/null || true; fi
  for p in "${installed[@]}"; do dpkg -P "$p" >/dev/null 2>&1 || echo "test-packages: could not purge $p" >&2; done
  for u in "${made_users[@]}"; do
    userdel "$u" 2>/dev/null || true
    groupdel "$u" 2>/dev/null || true
  done
  for d in "${made_dirs[@]}"; do rm -rf "$d"; done
  [ -z "$bifrost_data" ] || rm -rf "$bifrost_data"
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

version=$(awk '/^\[/ { in_ws = ($0 == "[workspace.package]") }
  in_ws && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }' Cargo.toml)
dist="$work/dist"
agent_deb="$dist/mover-agent-cli_${version}-1_amd64.deb"
bifrost_deb="$dist/bifrost_${version}-1_amd64.deb"
desktop_deb="$dist/mover-agent_${version}_amd64.deb"
linux_tar="moveragent-$version-x86_64-unknown-linux-gnu.tar.gz"
windows_zip="moveragent-$version-x86_64-pc-windows-gnu.zip"
desktop_tar="mover-agent-desktop-$version-x86_64-unknown-linux-gnu.tar.gz"

section "scripts/package (everything, release profile)"
started=$SECONDS
scripts/package --out "$dist"
package_secs=$((SECONDS - started))
for f in "$agent_deb" "$bifrost_deb" "$desktop_deb" "$dist/$linux_tar" "$dist/$windows_zip" "$dist/$desktop_tar"; do
  [ -s "$f" ] || fail "scripts/package did not make $f (made: $(ls "$dist"))"
done

# "MODE /path" for each file (not folder) of a .deb (cargo-deb writes ./usr/…, Tauri usr/…),
# kept in a file: grep -q on a pipe could cut its writer short and fail the pipeline.
listing() {
  local list
  list="$work/$(basename "$1").files"
  [ -f "$list" ] || dpkg-deb --fsys-tarfile "$1" | python3 -c '
import re, sys, tarfile
for m in tarfile.open(fileobj=sys.stdin.buffer, mode="r|"):
    if not m.isdir():
        print("%o /%s" % (m.mode & 0o7777, re.sub(r"^\./?", "", m.name)))' >"$list"
  echo "$list"
}
has() { # DEB MODE PATH
  grep -qxF "$2 $3" "$(listing "$1")" || { cat "$(listing "$1")" >&2; fail "$(basename "$1") lacks $3 (mode $2)"; }
  ok "$(basename "$1"): $3 ($2)"
}
field_is() { # DEB FIELD VALUE
  local got
  got=$(dpkg-deb -f "$1" "$2")
  [ "$got" = "$3" ] || fail "$(basename "$1"): $2 is '$got', expected '$3'"
  ok "$(basename "$1"): $2: $got"
}
depends_on() { # DEB PACKAGE...
  local deps pkg
  deps=$(dpkg-deb -f "$1" Depends)
  for pkg in "${@:2}"; do
    [[ ", $deps," =~ ,\ ${pkg}[\ ,] ]] || fail "$(basename "$1"): Depends ($deps) lacks $pkg"
  done
  ok "$(basename "$1"): Depends: $deps"
}
control() { dpkg-deb --ctrl-tarfile "$1" | tar -xO "./$2"; }
contains() { grep -q "$2" <<<"$1"; } # TEXT PATTERN
unit_in() { dpkg-deb --fsys-tarfile "$1" | tar -xO "./usr/lib/systemd/system/$2"; }

section "the agent's .deb"
dpkg-deb --info "$agent_deb"
field_is "$agent_deb" Package mover-agent-cli
field_is "$agent_deb" Version "$version-1"
depends_on "$agent_deb" libc6 adduser
has "$agent_deb" 755 /usr/bin/mover-agent
has "$agent_deb" 644 /usr/lib/systemd/system/mover-agent.service
! grep -q ' /usr/bin/agent$' "$(listing "$agent_deb")" || fail "the agent .deb installs a generic /usr/bin/agent"
cmp <(unit_in "$agent_deb" mover-agent.service) crates/agent-cli/debian/mover-agent.service ||
  fail "the packaged mover-agent.service is not crates/agent-cli/debian/mover-agent.service"
postinst=$(control "$agent_deb" postinst)
contains "$postinst" 'adduser --system' || fail "the agent's postinst makes no system user"
! contains "$postinst" 'deb-systemd-invoke \$_dh_action\|deb-systemd-invoke start' ||
  fail "the agent's postinst starts mover-agent.service; it should only install it"
ok "postinst makes the user mover-agent and neither enables nor starts the unit"

section "Bifrost's .deb"
dpkg-deb --info "$bifrost_deb"
field_is "$bifrost_deb" Package bifrost
field_is "$bifrost_deb" Version "$version-1"
depends_on "$bifrost_deb" libc6 adduser
has "$bifrost_deb" 755 /usr/bin/bifrost
has "$bifrost_deb" 644 /usr/lib/systemd/system/bifrost.service
has "$bifrost_deb" 644 /etc/default/bifrost
contains "$(control "$bifrost_deb" conffiles)" '^/etc/default/bifrost$' || fail "/etc/default/bifrost is not a conffile"
ok "/etc/default/bifrost is a conffile"
bifrost_unit=$(unit_in "$bifrost_deb" bifrost.service)
grep -qxF 'ExecStart=/usr/bin/bifrost serve --data /var/lib/bifrost --listen ${BIFROST_LISTEN} $BIFROST_OPTS' <<<"$bifrost_unit" ||
  fail "bifrost.service does not start /usr/bin/bifrost serve --data /var/lib/bifrost"
for line in User=bifrost StateDirectory=bifrost ProtectSystem=strict NoNewPrivileges=yes Environment=BIFROST_LISTEN=0.0.0.0:8443; do
  grep -qxF "$line" <<<"$bifrost_unit" || fail "bifrost.service lacks $line"
done
ok "bifrost.service: user bifrost, /var/lib/bifrost, port 8443, hardened"

section "the desktop app's .deb"
dpkg-deb --info "$desktop_deb"
field_is "$desktop_deb" Package mover-agent
field_is "$desktop_deb" Version "$version"
depends_on "$desktop_deb" libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1
has "$desktop_deb" 755 /usr/bin/mover-agent-desktop
has "$desktop_deb" 644 "/usr/share/applications/Mover Agent.desktop"
clash=$(comm -12 <(cut -d' ' -f2- "$(listing "$agent_deb")" | sort) \
  <(cut -d' ' -f2- "$(listing "$desktop_deb")" | sort))
[ -z "$clash" ] || fail "the agent and desktop .debs both ship: $clash"
ok "the agent and desktop .debs install side by side (no shared files)"

# Installs a .deb, remembering what to undo. $2: its system user.
install_deb() {
  local deb=$1 user=$2 home=$3
  getent passwd "$user" >/dev/null || made_users+=("$user")
  [ -e "$home" ] || made_dirs+=("$home")
  installed+=("$(dpkg-deb -f "$deb" Package)")
  dpkg -i "$deb"
  getent passwd "$user" >/dev/null || fail "installing $(basename "$deb") made no user $user"
  [ "$(getent passwd "$user" | cut -d: -f6)" = "$home" ] || fail "$user's home is not $home"
  [ -d "$home" ] && [ "$(stat -c %U "$home")" = "$user" ] || fail "$home is missing or not owned by $user"
  ok "user $user (system, home $home) exists"
}
verify_unit() {
  local out
  out=$(systemd-analyze verify "$1" 2>&1) || { echo "$out" >&2; fail "systemd-analyze verify $1"; }
  ! grep -F "$(basename "$1")" <<<"$out" || fail "systemd-analyze verify $1 warns (above)"
  ok "systemd-analyze verify $1"
}
purge() {
  dpkg -P "$1"
  local keep=() p
  for p in "${installed[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  installed=("${keep[@]}")
  [ ! -e "$2" ] || fail "$2 is still there after dpkg -P $1"
  ok "dpkg -P $1 removed $2"
}

section "install Bifrost's .deb and run it"
install_deb "$bifrost_deb" bifrost /var/lib/bifrost
[ -f /lib/systemd/system/bifrost.service ] || fail "/lib/systemd/system/bifrost.service is missing"
[ -L /etc/systemd/system/multi-user.target.wants/bifrost.service ] || fail "bifrost.service was not enabled"
ok "bifrost.service installed and enabled"
verify_unit /lib/systemd/system/bifrost.service
bifrost_data=$(mktemp -d)
chown bifrost:bifrost "$bifrost_data"
# As its service would run it: the user bifrost, no capabilities.
setpriv --reuid=bifrost --regid=bifrost --clear-groups --inh-caps=-all \
  /usr/bin/bifrost serve --data "$bifrost_data" --listen 127.0.0.1:0 >"$work/bifrost.log" 2>&1 &
bifrost_pid=$!
url=""
for _ in $(seq 1 300); do
  url=$(grep -o 'Bifrost listening on https://[0-9.:]*' "$work/bifrost.log" | head -1 | cut -d' ' -f4) || true
  [ -n "$url" ] && break
  kill -0 "$bifrost_pid" 2>/dev/null || { cat "$work/bifrost.log" >&2; fail "the installed bifrost exited"; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/bifrost.log" >&2; fail "the installed bifrost did not say where it listens within 30 s"; }
ok "installed bifrost (as user bifrost) listening on $url"
code=$(curl -k -sS -o "$work/console.html" -w '%{http_code}' "$url/")
[ "$code" = 200 ] && grep -qi '<html' "$work/console.html" || fail "GET $url/ answered $code, not the console"
ok "GET / -> 200, the console"
token=$(cat "$bifrost_data/admin.token")
code=$(curl -k -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url/api/v1/connectors")
[ "$code" = 200 ] || fail "GET /api/v1/connectors with the admin token answered $code"
code=$(curl -k -sS -o /dev/null -w '%{http_code}' "$url/api/v1/connectors")
[ "$code" = 401 ] || fail "GET /api/v1/connectors without a token answered $code, not 401"
ok "GET /api/v1/connectors -> 200 with the token, 401 without"
kill "$bifrost_pid"
wait "$bifrost_pid" 2>/dev/null || true
bifrost_pid=""
purge bifrost /usr/bin/bifrost
[ ! -e /etc/systemd/system/multi-user.target.wants/bifrost.service ] || fail "bifrost.service is still enabled after purge"

section "install the agent's .deb"
install_deb "$agent_deb" mover-agent /var/lib/mover-agent
[ -f /lib/systemd/system/mover-agent.service ] || fail "/lib/systemd/system/mover-agent.service is missing"
[ ! -e /etc/systemd/system/multi-user.target.wants/mover-agent.service ] || fail "mover-agent.service was enabled; it should only be installed"
ok "mover-agent.service installed, not enabled"
verify_unit /lib/systemd/system/mover-agent.service
said=$(/usr/bin/mover-agent --version | tr "\n" " ")
contains "$said" "$version" || fail "/usr/bin/mover-agent --version does not say $version: $said"
ok "/usr/bin/mover-agent --version: $said"
purge mover-agent-cli /usr/bin/mover-agent

section "archive layouts"
same() { [ "$1" = "$2" ] || fail "$3 holds [$1], expected [$2]"; ok "$3: $2"; }
same "$(tar tzf "$dist/$linux_tar" | tr '\n' ' ')" "moveragent/ moveragent/agent " "$linux_tar"
mkdir "$work/x"
tar xzf "$dist/$linux_tar" -C "$work/x"
said=$("$work/x/moveragent/agent" --version | tr "\n" " ")
contains "$said" "$version" || fail "moveragent/agent --version does not say $version: $said"
ok "moveragent/agent runs: $said"
same "$(tar tzf "$dist/$desktop_tar" | tr '\n' ' ')" "mover-agent-desktop " "$desktop_tar"
tar xzf "$dist/$desktop_tar" -C "$work/x"
[ "$(head -c4 "$work/x/mover-agent-desktop" | od -An -c | tr -d ' ')" = '177ELF' ] || fail "mover-agent-desktop is not an ELF binary"
[ -x "$work/x/mover-agent-desktop" ] || fail "mover-agent-desktop is not executable"
ok "mover-agent-desktop is an executable ELF binary"
zip_names() {
  python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None, "corrupt member"
assert z.read("moveragent/agent.exe")[:2] == b"MZ", "agent.exe is not a Windows executable"
print(" ".join(z.namelist()))' "$1"
}
same "$(zip_names "$dist/$windows_zip")" "moveragent/agent.exe" "$windows_zip (a Windows executable)"

section "scripts/release with a throwaway key"
mkdir "$work/key" "$work/other-key"
zipsign gen-key "$work/key/release.key" "$work/key/release.pub"
zipsign gen-key "$work/other-key/release.key" "$work/other-key/release.pub"
if MOVER_RELEASE_KEY_FILE="" scripts/release --out "$work/release" 2>"$work/nokey.err"; then
  fail "scripts/release ran without a key"
fi
grep -q 'no signing key' "$work/nokey.err" || fail "scripts/release without a key did not say why: $(cat "$work/nokey.err")"
ok "scripts/release refuses to run without a key"
started=$SECONDS
scripts/release --key "$work/key/release.key" --out "$work/release" --minimum "$version"
release_secs=$((SECONDS - started))
for name in "$linux_tar" "$windows_zip" "$desktop_tar"; do
  file="$work/release/$name"
  case $name in *.zip) kind=zip ;; *) kind=tar ;; esac
  zipsign verify "$kind" "$file" "$work/key/release.pub" >/dev/null || fail "$name does not verify"
  ok "$name verifies against the release key"
  if zipsign verify "$kind" "$file" "$work/other-key/release.pub" >/dev/null 2>&1; then
    fail "$name verifies against another key"
  fi
  mkdir -p "$work/renamed" "$work/flipped"
  renamed="$work/renamed/${name/$version/9.9.9}"
  cp "$file" "$renamed"
  if zipsign verify "$kind" "$renamed" "$work/key/release.pub" >/dev/null 2>&1; then
    fail "$name still verifies under another name (the context must be the file name)"
  fi
  cp "$file" "$work/flipped/$name"
  python3 - "$work/flipped/$name" <<'EOF'
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(os.path.getsize(sys.argv[1]) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x01]))
EOF
  if zipsign verify "$kind" "$work/flipped/$name" "$work/key/release.pub" >/dev/null 2>&1; then
    fail "$name with one flipped byte still verifies"
  fi
  ok "$name fails with another key, under another name and with a flipped byte"
done
same "$(tar tzf "$work/release/$linux_tar" | tr '\n' ' ')" "moveragent/ moveragent/agent " "signed $linux_tar"
same "$(tar tzf "$work/release/$desktop_tar" | tr '\n' ' ')" "mover-agent-desktop " "signed $desktop_tar"
same "$(zip_names "$work/release/$windows_zip")" "moveragent/agent.exe" "signed $windows_zip"
python3 - "$work/release/feed.json" "$version" "$linux_tar" "$windows_zip" "$desktop_tar" <<'EOF' ||
import json, sys
feed = json.load(open(sys.argv[1]))
names = {a["name"] for r in feed["releases"] for a in r["assets"]}
missing = set(sys.argv[3:]) - names
assert not missing, f"feed.json lacks {missing}"
assert feed.get("minimum_version") == sys.argv[2], f"minimum_version is {feed.get('minimum_version')}"
EOF
  fail "feed.json does not list the signed archives with the minimum version"
ok "feed.json lists the three archives, minimum_version $version"

section "durations"
echo "  scripts/package (all packages, release): ${package_secs}s"
echo "  scripts/release (archives already built): ${release_secs}s"
section "package sizes"
for f in "$agent_deb" "$bifrost_deb" "$desktop_deb" "$dist/$linux_tar" "$dist/$windows_zip" "$dist/$desktop_tar"; do
  bytes=$(stat -c %s "$f")
  printf '  %-62s %10s bytes %7s MiB\n' "$(basename "$f")" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')"
done
echo
echo "test-packages: all packages passed"
