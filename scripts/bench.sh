#!/usr/bin/env bash
# The benchmarks (not tests; timings never gate CI): installs the baselines (rsync, rclone,
# openssh-server), builds release binaries, then runs scripts/bench.py, which generates its data
# under $BENCH_DIR (default /var/tmp/mover-bench, ~3 GiB, ~8 GiB more during the small-file
# copies into the disk) and writes docs/BENCHMARKS.md.
# Knobs: BENCH_RUNS (3), BENCH_BIG_BYTES, BENCH_SMALL_FILES, BENCH_BROWSE_ENTRIES.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mover-target}"
need=()
for pkg in rsync rclone openssh-server openssh-client python3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
cargo build --release -p bifrost -p mover-agent-cli -p mover-bench
exec python3 scripts/bench.py
