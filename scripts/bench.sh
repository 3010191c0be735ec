#!/usr/bin/env bash
# The benchmarks (not tests; timings never gate CI). Each writes its table into docs/BENCHMARKS.md.
#   scripts/bench.sh               the folder suite (scripts/bench.py): installs the baselines
#                                  (rsync, rclone, openssh-server), builds release binaries,
#                                  generates its data under $BENCH_DIR (default
#                                  /var/tmp/mover-bench, ~3 GiB, ~8 GiB more during the small-file
#                                  copies into the disk).
#   scripts/bench.sh compare REV   scenarios 1 and 2 of the folder suite with REV's binaries and
#                                  this checkout's alternating (scripts/bench_compare.py); REV is
#                                  built in a worktree under $BENCH_DIR, its binaries kept in
#                                  $BENCH_DIR/bin-REV.
#   scripts/bench.sh objects       object storage (scripts/bench_objects.py): Mover, rclone and a
#                                  plain client into moto (S3) and Azurite (Azure Blob), which
#                                  scripts/setup installs into $MOVER_TOOLS.
# Knobs: BENCH_RUNS (3), BENCH_BIG_BYTES, BENCH_SMALL_FILES, BENCH_BROWSE_ENTRIES, and those
# named in bench_objects.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mover-target}"
BENCH_DIR="${BENCH_DIR:-/var/tmp/mover-bench}"
MOVER_TOOLS="${MOVER_TOOLS:-$HOME/.cache/mover-tools}"
what="${1:-folder}"
case "$what" in
  folder) pkgs=(rsync rclone openssh-server openssh-client python3) ;;
  objects) pkgs=(rclone python3) ;;
  *) pkgs=(python3) ;;
esac
need=()
for pkg in "${pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
case "$what" in
  folder)
    cargo build --release -p bifrost -p mover-agent-cli -p mover-bench
    exec python3 scripts/bench.py
    ;;
  compare)
    rev="${2:?usage: scripts/bench.sh compare REV}"
    short="$(git rev-parse --short "$rev^{commit}")"
    bins="$BENCH_DIR/bin-$short"
    if [ ! -x "$bins/bifrost" ] || [ ! -x "$bins/agent" ]; then
      src="$BENCH_DIR/src-$short"
      [ -d "$src" ] || git worktree add --detach "$src" "$short"
      # The same target folder: dependencies are shared, and the binaries are copied out before
      # this checkout's build replaces them.
      (cd "$src" && cargo build --release -p bifrost -p mover-agent-cli)
      mkdir -p "$bins"
      cp "$CARGO_TARGET_DIR/release/bifrost" "$CARGO_TARGET_DIR/release/agent" "$bins/"
    fi
    cargo build --release -p bifrost -p mover-agent-cli
    BENCH_BINARIES_BEFORE="$bins" BENCH_BEFORE_LABEL="$short" exec python3 scripts/bench.py
    ;;
  objects)
    [ -x "$MOVER_TOOLS/venv/bin/python" ] && [ -x "$MOVER_TOOLS/node/node_modules/.bin/azurite-blob" ] \
      || { echo "moto or Azurite missing under $MOVER_TOOLS: run scripts/setup" >&2; exit 1; }
    cargo build --release -p bifrost -p mover-agent-cli
    exec "$MOVER_TOOLS/venv/bin/python" scripts/bench_objects.py
    ;;
  *)
    echo "usage: scripts/bench.sh [folder | compare REV | objects]" >&2
    exit 2
    ;;
esac
