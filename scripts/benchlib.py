"""The benchmarks' shared harness: child processes, a release Bifrost and agent driven through the
API, the generated data, the page-cache discipline every run follows, and the writer of a marked
section of docs/BENCHMARKS.md. Used by bench.py (the folder suite), bench_compare.py (before and
after binaries alternating) and bench_objects.py (object storage)."""
import http.client
import json
import os
import random
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/mover-target")), "release")
WORK = os.environ.get("BENCH_DIR", "/var/tmp/mover-bench")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BIG = int(os.environ.get("BENCH_BIG_BYTES", str(2 << 30)))
SMALL_FILES = int(os.environ.get("BENCH_SMALL_FILES", "20000"))
BROWSE_ENTRIES = int(os.environ.get("BENCH_BROWSE_ENTRIES", "200000"))
GiB = 1 << 30
MiB = 1 << 20
procs = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def spawn(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    procs.append(p)
    return p


def kill_all():
    """Ends every child this harness started (called once, on the way out)."""
    for p in procs:
        if p.poll() is None:
            p.kill()


def wait_line(p, pattern, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"{p.args[0]} exited before printing {pattern!r}")
        m = re.search(pattern, line)
        if m:
            return m
    raise RuntimeError(f"timed out waiting for {pattern!r}")


def drain(p):
    """Keeps a child's pipe from filling up."""
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()


def sh(cmd, **kw):
    subprocess.run(cmd, shell=True, check=True, **kw)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(fn, prepare=None):
    times = []
    for _ in range(RUNS):
        if prepare:
            prepare()
        times.append(timed(fn))
    return statistics.median(times)


def commit():
    return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def now_utc():
    return time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())


class Bifrost:
    """A release Bifrost from `bin_dir` with its own data folder, serving on a kernel-chosen port."""

    def __init__(self, bin_dir=BIN, name="bifrost"):
        data = os.path.join(WORK, name)
        shutil.rmtree(data, ignore_errors=True)
        self.p = spawn([os.path.join(bin_dir, "bifrost"), "serve", "--listen", "127.0.0.1:0", "--data", data],
                       env={**os.environ, "BIFROST_LOG": "warn"})
        m = wait_line(self.p, r"Bifrost listening on https://([0-9.]+):(\d+)")
        self.host, self.port = m.group(1), int(m.group(2))
        self.fingerprint = wait_line(self.p, r"TLS certificate SHA-256 fingerprint: (\S+)").group(1)
        drain(self.p)
        self.token = open(os.path.join(data, "admin.token")).read().strip()
        # A local benchmark against its own freshly made self-signed certificate.
        self.ctx = ssl._create_unverified_context()
        self.conn = None

    @property
    def url(self):
        return f"https://{self.host}:{self.port}"

    def cpu_seconds(self):
        return cpu_seconds(self.p.pid)

    def api(self, method, path, body=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=600)
            try:
                self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                                  headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
                res = self.conn.getresponse()
                data = res.read()
                if res.status >= 400:
                    raise RuntimeError(f"{method} {path}: {res.status} {data[:300]!r}")
                return json.loads(data) if data else None
            except (http.client.HTTPException, OSError):
                # An idle keep-alive connection closed by Bifrost: reconnect once.
                self.conn = None
                if attempt:
                    raise

    def authorize(self, key, name):
        for _ in range(100):
            try:
                conn = self.api("POST", "/api/v1/connectors", {"key": key, "name": name})["id"]
                break
            except RuntimeError as e:
                if "404" not in str(e):
                    raise
                time.sleep(0.1)
        else:
            raise RuntimeError("the agent never showed up")
        # Steady state, as when an admin creates jobs after authorizing: the agent's extra
        # lanes are open (they are dialled once the tunnel is authorized).
        for _ in range(100):
            c = [c for c in self.api("GET", "/api/v1/connectors") if c["id"] == conn]
            if c and c[0].get("connections", 1) >= 3:
                break
            time.sleep(0.1)
        return conn

    def copy(self, connector, sources, dest, **extra):
        """Copies `sources` into folder `dest` (a path) or into `dest` as a destination object
        (`{"kind": "stored", ...}`), and waits for the job to complete."""
        if isinstance(dest, str):
            dest = {"kind": "folder", "path": dest}
        job = self.api("POST", "/api/v1/jobs", {"connector": connector, "sources": sources,
                                                  "destination": dest, **extra})
        while True:
            j = self.api("GET", f"/api/v1/jobs/{job['id']}")
            if j["state"] in ("completed", "completed_with_errors", "failed", "cancelled"):
                break
            # Each poll costs Bifrost a count over the job's files: poll like a console would
            # refresh, not in a tight loop, so the poller does not weigh on what it measures.
            time.sleep(0.05)
        if j["state"] != "completed":
            raise RuntimeError(f"job {j['id']} ended {j['state']}: {j}")
        return j


class Agent:
    """A release agent from `bin_dir` sharing `share`, dialled out to `relay`."""

    def __init__(self, name, relay, fingerprint, share, bin_dir=BIN):
        self.home = os.path.join(WORK, f"agent-{name}")
        self.p = spawn([os.path.join(bin_dir, "agent"), "start", "--relay", relay, "--relay-fingerprint", fingerprint,
                        "--share", share], env={**os.environ, "MOVER_AGENT_HOME": self.home, "MOVER_LOG": "warn"})
        for _ in range(10):
            if self.p.stdout.readline().strip() == "Ctrl-C To Stop":
                break
        drain(self.p)
        # Its output is not a terminal, so it shows only the key's start: the key file holds it.
        self.key = open(os.path.join(self.home, "connector.key")).read().strip()
        if not re.fullmatch(r"[0-9a-f]{32}", self.key):
            raise RuntimeError("the agent has no key")

    def proc(self, field):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self):
        return cpu_seconds(self.p.pid)

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def big_file(folder, size):
    """`folder/big.bin` of `size` random bytes, made once."""
    path = os.path.join(WORK, folder)
    if not os.path.exists(os.path.join(path, "big.bin")) or os.path.getsize(os.path.join(path, "big.bin")) != size:
        os.makedirs(path, exist_ok=True)
        log(f"generating a {size >> 20} MiB file")
        sh(f"head -c {size} /dev/urandom > {path}/big.bin")
    return path


def small_files():
    """SMALL_FILES files of 4-64 KiB in 500 nested folders, made once."""
    small = os.path.join(WORK, "src-small")
    if not os.path.exists(os.path.join(small, ".done")):
        shutil.rmtree(small, ignore_errors=True)
        log(f"generating {SMALL_FILES} files of 4-64 KiB")
        rng = random.Random(42)
        for i in range(SMALL_FILES):
            d = os.path.join(small, f"dept{i % 20:02d}", f"project{(i // 20) % 25:02d}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"doc{i:05d}.bin"), "wb") as f:
                f.write(os.urandom(rng.randint(4 << 10, 64 << 10)))
        open(os.path.join(small, ".done"), "w").close()
    return small


def tree_bytes(path):
    """Bytes of the regular files under `path`, the `.done` marker left out."""
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs if f != ".done")


def wide_folder():
    wide = os.path.join(WORK, "src-wide")
    if not os.path.exists(os.path.join(wide, ".done")):
        shutil.rmtree(wide, ignore_errors=True)
        log(f"generating a folder of {BROWSE_ENTRIES} entries")
        os.makedirs(os.path.join(wide, "folder"))
        for i in range(BROWSE_ENTRIES):
            open(os.path.join(wide, "folder", f"entry{i:06d}.txt"), "w").close()
        open(os.path.join(wide, ".done"), "w").close()
    return wide


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def warm(source):
    """Reads the source so that every run starts from the page cache: this VM drops cached pages
    even with half its memory free (the 2 GiB file was found 1.1 GiB resident between runs),
    and a run that reads part of its source from the disk times the disk."""
    sh(f"find {source} -type f -exec cat {{}} + > /dev/null")


def ready(path, source):
    """An empty destination, nothing left to write back, the source in the page cache."""
    os.makedirs(path)
    sh("sync")
    warm(source)


def fresh(path, source):
    def prepare():
        shutil.rmtree(path, ignore_errors=True)
        ready(path, source)
    return prepare


class NewFolders:
    """A new destination folder for every run, all deleted once the scenario is over.

    On an ext4 without a journal (this VM's disk) creating files right after deleting thousands
    scans past every inode deleted in the last minute: copying the 20,000 files into a folder
    just emptied ran at ~1,500 files/s for Mover and ~1,100 for `cp -r`, against ~4,400 and
    ~9,000 into a new folder. Deleting each run's copy would time that scan, not the tools."""

    def __init__(self, base, source, keep):
        self.base, self.source, self.keep, self.runs, self.path = base, source, keep, 0, None

    def prepare(self):
        # tmpfs has no such scan, and keeping every copy there would hold them all in memory.
        if self.path and not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        self.runs += 1
        self.path = os.path.join(self.base, f"run-{self.runs}")
        ready(self.path, self.source)

    def clear(self):
        shutil.rmtree(self.base, ignore_errors=True)


def spread(times):
    """`median (min–max)` of a list of seconds."""
    return f"{statistics.median(times):.2f} s ({min(times):.2f}–{max(times):.2f})"


def write_section(marker, text):
    """Replaces what stands between `<!-- MARKER:begin -->` and `<!-- MARKER:end -->` in
    docs/BENCHMARKS.md with `text` (appending the pair if missing), and prints it."""
    path = os.path.join(REPO, "docs", "BENCHMARKS.md")
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    old = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if begin not in old:
        old += f"\n{begin}\n{end}\n"
    head, rest = old.split(begin, 1)
    tail = rest.split(end, 1)[1]
    open(path, "w").write(f"{head}{begin}\n{text}\n{end}{tail}")
    print(text)
