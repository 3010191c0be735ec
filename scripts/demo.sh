#!/usr/bin/env bash
# One command, one machine: builds everything, starts a local Bifrost (embedded database,
# self-signed certificate) and an agent sharing a demo folder, authorizes the agent, browses
# and copies the folder, and prints what to do next. Ctrl-C stops both.
#   scripts/demo.sh          keep running afterwards so you can explore
#   scripts/demo.sh --once   stop after the copy (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[ "${1:-}" = "--once" ] && once=true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mover-target}"
# A fresh Debian 12 machine with Rust may lack these two: installed when run as root.
missing=()
for tool in curl python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "the demo needs ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

echo "Building (first time: a few minutes)..."
cargo build --quiet --bins
bin="$CARGO_TARGET_DIR/debug"

demo="$PWD/demo-data"
rm -rf "$demo"
mkdir -p "$demo/share/Finance/2026" "$demo/share/HR" "$demo/destination"
for i in $(seq 1 200); do printf 'invoice %s\n' "$i" > "$demo/share/Finance/2026/invoice-$i.txt"; done
head -c 20000000 /dev/urandom > "$demo/share/Finance/ledger.bin"
printf 'Grüße aus dem Personalwesen\n' > "$demo/share/HR/Übersicht 2026.txt"

pids=()
cleanup() {
  [ -n "${agent_home:-}" ] && MOVER_AGENT_HOME="$agent_home" "$bin/agent" stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Port 8443 when free, else any free port.
listen=127.0.0.1:8443
if (exec 3<>/dev/tcp/127.0.0.1/8443) 2>/dev/null; then listen=127.0.0.1:0; fi
"$bin/bifrost" serve --listen "$listen" --data "$demo/bifrost" >"$demo/bifrost.out" 2>"$demo/bifrost.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^Admin token: ' "$demo/bifrost.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^Bifrost listening on //p' "$demo/bifrost.out")
fp=$(sed -n 's/^TLS certificate SHA-256 fingerprint: //p' "$demo/bifrost.out")
token=$(cat "$demo/bifrost/admin.token")
[ -n "$url" ] || { cat "$demo/bifrost.log" >&2; exit 1; }

agent_home="$demo/agent"
MOVER_AGENT_HOME="$agent_home" "$bin/agent" start --relay "$url" --relay-fingerprint "$fp" --share "$demo/share" >"$demo/agent.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'Ctrl-C To Stop' "$demo/agent.out" 2>/dev/null && break; sleep 0.1; done
# Its output is not a terminal, so it shows only the key's start: the key file holds it.
key=$(cat "$agent_home/connector.key")

api() { curl -sS --fail-with-body -k -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

for _ in $(seq 1 100); do api "$url/api/v1/connectors" | grep -q waiting && break; sleep 0.1; done
connector=$(api -X POST "$url/api/v1/connectors" -d "{\"key\":\"$key\",\"name\":\"Demo file server\"}" | json "['id']")
api "$url/api/v1/connectors/$connector/browse?path=$demo/share" >/dev/null
start=$(date +%s.%N)
job=$(api -X POST "$url/api/v1/jobs" -d "{\"connector\":\"$connector\",\"sources\":[\"$demo/share/Finance\",\"$demo/share/HR\"],\"destination\":{\"kind\":\"folder\",\"path\":\"$demo/destination\"}}" | json "['id']")
while :; do
  state=$(api "$url/api/v1/jobs/$job" | json "['state']")
  case "$state" in completed|completed_with_errors|failed|cancelled) break ;; esac
  sleep 0.1
done
end=$(date +%s.%N)
files=$(api "$url/api/v1/jobs/$job" | json "['files_done']")
bytes=$(api "$url/api/v1/jobs/$job" | json "['bytes_done']")
diff -r "$demo/share/Finance" "$demo/destination/Finance" >/dev/null && diff -r "$demo/share/HR" "$demo/destination/HR" >/dev/null \
  && verified="identical to the source" || verified="DIFFERENT from the source"

cat <<MSG

Mover demo is up.
  Console:                   $url   (open it in a browser, accept the certificate, sign in with the admin token)
  TLS fingerprint:           $fp
  Admin token:               $token
  Agent key:                 $key   (agent home: $agent_home)

The demo authorized the agent as "Demo file server", browsed $demo/share and copied it:
  job $job: $state, $files files, $bytes bytes in $(python3 -c "print(f'{$end-$start:.2f}')") s; destination $verified.

Next steps, by hand:
  export MOVER_AGENT_HOME=$agent_home; $bin/agent status     # or: agent monitor
  curl -k -H "Authorization: Bearer $token" $url/api/v1/connectors
  curl -k -H "Authorization: Bearer $token" "$url/api/v1/connectors/$connector/browse?path=$demo/share"
  curl -k -H "Authorization: Bearer $token" $url/api/v1/jobs/$job/files
MSG
[ "$state" = completed ] && [ "$verified" = "identical to the source" ] || exit 1
$once && exit 0
echo
echo "Ctrl-C stops Bifrost and the agent."
wait
