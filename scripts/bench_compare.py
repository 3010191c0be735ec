"""Folder destination, before and after a change: scenario 1 (the big file) and scenario 2 (the
small files, into the disk and into tmpfs) with two builds side by side in one run. Each side
has its own Bifrost and agent, both kept running; runs alternate before, after, before, after...
over the same data, each from the same state (an empty destination, nothing left to write back,
the source in the page cache). Writes the table between the `compare` markers of
docs/BENCHMARKS.md.

`BENCH_BINARIES_BEFORE=DIR python3 scripts/bench.py` (DIR holds `bifrost` and `agent`), or
`scripts/bench.sh compare REV`, which builds REV into such a folder first.
"""
import os
import shutil
import statistics

from benchlib import (BIG, BIN, RUNS, SMALL_FILES, WORK, Agent, Bifrost, NewFolders, big_file, commit,
                      fresh, log, now_utc, small_files, spread, timed, tree_bytes, write_section)

BEFORE_LABEL = os.environ.get("BENCH_BEFORE_LABEL", "before")


class Side:
    """One build: its Bifrost, its agent (sharing WORK) and the times and CPU of its runs."""

    def __init__(self, name, bin_dir):
        self.name = name
        self.bifrost = Bifrost(bin_dir, f"bifrost-{name}")
        self.agent = Agent(name, self.bifrost.url, self.bifrost.fingerprint, WORK, bin_dir)
        self.conn = self.bifrost.authorize(self.agent.key, name)
        self.runs = {}

    def run(self, scenario, sources, dest, **extra):
        """One timed copy; records wall time and the CPU seconds of Bifrost and of the agent."""
        b0, a0 = self.bifrost.cpu_seconds(), self.agent.cpu_seconds()
        secs = timed(lambda: self.bifrost.copy(self.conn, sources, dest, **extra))
        cpu = (self.bifrost.cpu_seconds() - b0, self.agent.cpu_seconds() - a0)
        self.runs.setdefault(scenario, []).append((secs, *cpu))
        log(f"  {scenario} {self.name}: {secs:.2f} s (Bifrost CPU {cpu[0]:.2f} s, agent {cpu[1]:.2f} s)")


def alternate(sides, scenario, sources, prepare, dest, **extra):
    """RUNS runs of each side, before and after taking turns, `prepare()` before every run."""
    for i in range(RUNS):
        for side in sides:
            prepare()
            side.run(scenario, sources, dest(), **extra)


def main(before_dir):
    os.makedirs(WORK, exist_ok=True)
    big, small = big_file("src-big", BIG), small_files()
    small_bytes = tree_bytes(small)
    sides = [Side("before", before_dir), Side("after", BIN)]
    dest = os.path.join(WORK, "dest")

    log(f"1. big file, {RUNS} runs a side, alternating")
    alternate(sides, "big", [f"{big}/big.bin"], fresh(dest, big), lambda: dest)
    targets = [("small_disk", dest)]
    if os.path.isdir("/dev/shm"):
        targets.append(("small_tmpfs", "/dev/shm/mover-bench-dest"))
    for scenario, base in targets:
        log(f"2. {scenario}, {RUNS} runs a side, alternating")
        shutil.rmtree(base, ignore_errors=True)
        to = NewFolders(base, small, keep=scenario == "small_disk")
        alternate(sides, scenario, [small], to.prepare, lambda: to.path, concurrency=16)
        to.clear()
    for side in sides:
        side.agent.stop()
    write_report(sides, small_bytes)


def write_report(sides, small_bytes):
    before, after = sides
    rows = []
    for scenario, what, size, unit in (
            ("big", f"1. {BIG >> 30} GiB file into disk", BIG, "MB/s"),
            ("small_disk", f"2. {SMALL_FILES} files into disk", SMALL_FILES, "files/s"),
            ("small_tmpfs", f"2. {SMALL_FILES} files into tmpfs", SMALL_FILES, "files/s")):
        if scenario not in after.runs:
            continue
        b = [r[0] for r in before.runs[scenario]]
        a = [r[0] for r in after.runs[scenario]]
        rate = (lambda s: f"{size / s / 1e6:.0f} MB/s") if unit == "MB/s" else (lambda s: f"{size / s:.0f} files/s")
        cpu = lambda side, k: statistics.median(r[k] for r in side.runs[scenario])
        ratio = statistics.median(b) / statistics.median(a)
        rows.append(
            f"| {what} | {rate(statistics.median(b))}, {spread(b)} | {rate(statistics.median(a))}, {spread(a)} "
            f"| {ratio:.2f}× | {cpu(before, 1):.2f} s → {cpu(after, 1):.2f} s "
            f"| {cpu(before, 2):.2f} s → {cpu(after, 2):.2f} s |")
    text = "\n".join([
        f"Run {now_utc()}: before = {BEFORE_LABEL}, after = {commit()} (this checkout), {os.cpu_count()} cores, "
        f"release builds, loopback. {RUNS} runs a side, alternating (before, after, before, after, ...); "
        f"each cell is the median, with the fastest and slowest run in brackets. Every run starts from an "
        f"empty destination (a new folder for the small files), `sync` done and the source read into the "
        f"page cache; both sides' Bifrost and agent stay up the whole time (the idle pair waits). Time runs "
        f"from creating the job to its completion; the small files are {small_bytes / (1 << 20):.0f} MiB, "
        f"copied 16 requests at a time. CPU columns: median CPU seconds of a run (user + system), "
        f"before → after.",
        "",
        f"| Scenario | Before ({BEFORE_LABEL}) | After ({commit()}) | Before time ÷ after time "
        f"| Bifrost CPU | Agent CPU |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    write_section("compare", text)
