#!/usr/bin/env python3
"""Object-storage benchmarks (not tests): a 1 GiB file and the 20,000 small files copied into
moto's S3 server and into Azurite by Mover (agent -> Bifrost -> a stored destination), by
`rclone copy --transfers 8` from the local folder, and by a plain client alone (boto3,
azure-storage-blob: the emulator's own rate), side by side in one run. Every run gets a fresh
emulator process and a fresh bucket or container, and the tools take turns run by run (Mover,
rclone, plain client, Mover, ...). Every run is checked afterwards (object count and bytes).
Writes the table between the `objects` markers of docs/BENCHMARKS.md.

Runs with the Python of scripts/setup's venv (boto3, azure-storage-blob): `scripts/bench.sh
objects`. Knobs: BENCH_RUNS (3), BENCH_OBJECT_BIG_BYTES (1 GiB), BENCH_SMALL_FILES (20000),
BENCH_OBJECT_STORES (s3,azure_blob), BENCH_OBJECT_TOOLS (mover,rclone,plain: leave Mover out to
measure the others alone), BENCH_OBJECT_CONCURRENCY (Mover's files at once, 8 as rclone's
--transfers), MOVER_TOOLS (~/.cache/mover-tools).
"""
import os
import shutil
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from benchlib import (BIN, MiB, RUNS, SMALL_FILES, WORK, Agent, Bifrost, big_file, commit, cpu_seconds, kill_all, log,
                      now_utc, procs, sh, small_files, spread, tree_bytes, warm, write_section)

TOOLS = os.environ.get("MOVER_TOOLS", os.path.expanduser("~/.cache/mover-tools"))
BIG = int(os.environ.get("BENCH_OBJECT_BIG_BYTES", str(1 << 30)))
STORES = os.environ.get("BENCH_OBJECT_STORES", "s3,azure_blob").split(",")
TOOL_NAMES = os.environ.get("BENCH_OBJECT_TOOLS", "mover,rclone,plain").split(",")
CONCURRENCY = int(os.environ.get("BENCH_OBJECT_CONCURRENCY", "8"))
# Threads of the plain clients and rclone's --transfers.
TRANSFERS = 8
BUCKET = "bench"


class Emulator:
    """An emulator process of its own on a kernel-chosen port; its output goes to a file (moto
    logs every request), from which the port is read."""

    def __init__(self, args, marker):
        self.log_path = os.path.join(WORK, f"{self.kind}.log")
        with open(self.log_path, "w") as out:
            self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        procs.append(self.p)
        deadline = time.time() + 60
        while True:
            lines = [l for l in open(self.log_path, errors="replace") if marker in l]
            if lines:
                self.endpoint = "http://" + lines[0].split("http://", 1)[1].split()[0].rstrip("/")
                break
            if self.p.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{args[0]} did not listen: {open(self.log_path).read()[-2000:]}")
            time.sleep(0.1)
        while True:  # bound, not yet serving: wait for an answer of any status
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=5)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def cpu_seconds(self):
        return cpu_seconds(self.p.pid)

    def stop(self):
        os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait()


class Moto(Emulator):
    """moto's S3 server (objects in memory, spilled to temp files past 5 MiB)."""
    kind = "s3"
    label = "S3 (moto)"

    def __init__(self):
        super().__init__([f"{TOOLS}/venv/bin/moto_server", "-H", "127.0.0.1", "-p", "0"], "Running on http://")
        import boto3
        from botocore.config import Config
        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                                   aws_secret_access_key="testing", region_name="us-east-1",
                                   config=Config(max_pool_connections=2 * TRANSFERS, s3={"addressing_style": "path"}))
        self.client.create_bucket(Bucket=BUCKET)

    def destination(self, name):
        return {"name": name, "kind": "s3", "bucket": BUCKET, "prefix": "", "endpoint": self.endpoint,
                "region": "us-east-1", "path_style": True, "access_key_id": "testing", "secret_access_key": "testing"}

    def rclone_remote(self):
        return (f"[dest]\ntype = s3\nprovider = Other\naccess_key_id = testing\nsecret_access_key = testing\n"
                f"endpoint = {self.endpoint}\nforce_path_style = true\n")

    def upload_big(self, path, key):
        from boto3.s3.transfer import TransferConfig
        self.client.upload_file(path, BUCKET, key, Config=TransferConfig(max_concurrency=TRANSFERS))

    def put(self, key, body):
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def contents(self):
        n = size = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for o in page.get("Contents", []):
                n, size = n + 1, size + o["Size"]
        return n, size


class Azurite(Emulator):
    """Azurite's Blob service, keeping its blobs in a folder under WORK (deleted after the run)."""
    kind = "azure_blob"
    label = "Azure Blob (Azurite)"
    ACCOUNT = "devstoreaccount1"
    # Azurite's built-in development key, as Microsoft publishes it (not a secret).
    KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    def __init__(self):
        self.location = os.path.join(WORK, "azurite-data")
        shutil.rmtree(self.location, ignore_errors=True)
        os.makedirs(self.location)
        super().__init__([f"{TOOLS}/node/node_modules/.bin/azurite-blob", "--blobHost", "127.0.0.1", "--blobPort", "0",
                          "--location", self.location, "--disableTelemetry", "--skipApiVersionCheck", "--loose"],
                         "listens on http://")
        self.account_url = f"{self.endpoint}/{self.ACCOUNT}"
        from azure.storage.blob import BlobServiceClient
        service = BlobServiceClient(self.account_url, credential={"account_name": self.ACCOUNT, "account_key": self.KEY})
        self.container = service.create_container(BUCKET)

    def destination(self, name):
        return {"name": name, "kind": "azure_blob", "account": self.ACCOUNT, "container": BUCKET, "prefix": "",
                "access_key": self.KEY, "endpoint": self.account_url}

    def rclone_remote(self):
        """A container SAS URL made with the account key: Debian's rclone 1.60 cannot reach an
        Azurite on a port of its own with `account`/`key` (its `endpoint` is a host suffix after
        `https://ACCOUNT.`) nor with `use_emulator` (it requests `blob.core.windows.net/...`)."""
        import datetime
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas
        sas = generate_container_sas(self.ACCOUNT, BUCKET, account_key=self.KEY,
                                     permission=ContainerSasPermissions(read=True, add=True, create=True, write=True,
                                                                        delete=True, list=True),
                                     expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=4))
        return f"[dest]\ntype = azureblob\nsas_url = {self.account_url}/{BUCKET}?{sas}\n"

    def upload_big(self, path, key):
        with open(path, "rb") as f:
            self.container.upload_blob(key, f, overwrite=True, max_concurrency=TRANSFERS)

    def put(self, key, body):
        self.container.upload_blob(key, body, overwrite=True)

    def contents(self):
        n = size = 0
        for b in self.container.list_blobs():
            n, size = n + 1, size + b.size
        return n, size

    def stop(self):
        super().stop()
        shutil.rmtree(self.location, ignore_errors=True)


class Mover:
    """One Bifrost and one agent for the whole run; a new stored destination for every run."""

    def __init__(self):
        self.bifrost = Bifrost(BIN, "bifrost-objects")
        self.agent = Agent("objects", self.bifrost.url, self.bifrost.fingerprint, WORK)
        self.conn = self.bifrost.authorize(self.agent.key, "objects")
        self.made = 0

    def prepare(self, emulator):
        self.made += 1
        dest = self.bifrost.api("POST", "/api/v1/destinations", emulator.destination(f"bench-{self.made}"))
        self.dest = {"kind": "stored", "id": dest["id"], "path": ""}

    def copy(self, source):
        self.bifrost.copy(self.conn, [source], self.dest, concurrency=CONCURRENCY)


def rclone(emulator, source, into):
    conf = os.path.join(WORK, "rclone.conf")
    with open(conf, "w") as f:
        f.write(emulator.rclone_remote())
    # rclone 1.60's AWS SDK refuses any AWS_CA_BUNDLE ("unsupported transport"); the emulators
    # speak plain http, so no CA bundle is needed.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    sh(f"rclone --config {conf} copy --transfers {TRANSFERS} -q {source} dest:{BUCKET}/{into}", env=env)


def plain_small(emulator, source):
    """Every file with one PUT, TRANSFERS at a time, under the same keys as the others."""
    top = os.path.dirname(source)
    files = [os.path.join(r, f) for r, _, fs in os.walk(source) for f in fs]

    def one(path):
        with open(path, "rb") as f:
            emulator.put(os.path.relpath(path, top), f.read())
    with ThreadPoolExecutor(TRANSFERS) as pool:
        list(pool.map(one, files))


def run_one(store, tool, data, source, mover, expect):
    """One timed copy into a fresh emulator; returns (seconds, emulator CPU seconds)."""
    emulator = {"s3": Moto, "azure_blob": Azurite}[store]()
    try:
        name = os.path.basename(source)
        if tool == "mover":
            mover.prepare(emulator)
            copy = lambda: mover.copy(source)
        elif tool == "rclone":
            into = "" if data == "big" else name
            copy = lambda: rclone(emulator, source, into)
        elif data == "big":
            copy = lambda: emulator.upload_big(source, name)
        else:
            copy = lambda: plain_small(emulator, source)
        sh("sync")
        warm(source)
        cpu0, b0 = emulator.cpu_seconds(), mover.bifrost.cpu_seconds() if mover else 0
        t = time.perf_counter()
        copy()
        secs = time.perf_counter() - t
        cpu = emulator.cpu_seconds() - cpu0
        got = emulator.contents()
        if got != expect:
            raise RuntimeError(f"{tool} into {store}: {got} objects and bytes, expected {expect}")
        extra = f", Bifrost CPU {mover.bifrost.cpu_seconds() - b0:.2f} s" if tool == "mover" else ""
        log(f"  {store} {data} {tool}: {secs:.2f} s, emulator CPU {cpu:.2f} s{extra}")
        return secs, cpu
    finally:
        emulator.stop()


def main():
    os.makedirs(WORK, exist_ok=True)
    big = os.path.join(big_file("src-obj-big", BIG), "big.bin")
    small = small_files()
    # Every file of the tree, its empty `.done` marker included, as every tool copies it.
    count = sum(len(fs) for _, _, fs in os.walk(small))
    datasets = {"big": (big, (1, BIG)), "small": (small, (count, tree_bytes(small)))}
    mover = Mover() if "mover" in TOOL_NAMES else None
    results = {}
    for store in STORES:
        for data, (source, expect) in datasets.items():
            log(f"{store}, {data}: {RUNS} runs of {', '.join(TOOL_NAMES)}, taking turns")
            for _ in range(RUNS):
                for tool in TOOL_NAMES:
                    results.setdefault((store, data, tool), []).append(
                        run_one(store, tool, data, source, mover, expect))
    if mover:
        mover.agent.stop()
    write_report(results, datasets["small"][1][1])


def write_report(results, small_bytes):
    def cell(store, data, tool):
        runs = results.get((store, data, tool))
        if not runs:
            return "not run"
        secs = [r[0] for r in runs]
        m = statistics.median(secs)
        rate = f"{BIG / m / 1e6:.0f} MB/s" if data == "big" else f"{SMALL_FILES / m:.0f} files/s"
        busy = statistics.median(r[1] / r[0] for r in runs)
        return f"{rate}, {spread(secs)}; emulator busy {busy:.0%}"

    rows = []
    for store in STORES:
        label = {"s3": Moto.label, "azure_blob": Azurite.label}[store]
        for data, what in (("big", f"{BIG >> 20} MiB file"), ("small", f"{SMALL_FILES} files")):
            mover, other = results.get((store, data, "mover")), results.get((store, data, "rclone"))
            if mover and other:
                ratio = statistics.median(r[0] for r in other) / statistics.median(r[0] for r in mover)
                verdict = f"{ratio:.2f}× | {'met' if ratio >= 1.0 else 'missed'}"
            else:
                verdict = "— | not measured"
            rows.append(f"| {label}, {what} | {cell(store, data, 'mover')} | {cell(store, data, 'rclone')} "
                        f"| {verdict} | {cell(store, data, 'plain')} |")
    text = "\n".join([
        f"Run {now_utc()} on commit {commit()}, {os.cpu_count()} cores, release builds, loopback. "
        f"{RUNS} runs of each tool, taking turns run by run (Mover, rclone, plain client, ...); each cell is "
        f"the median with the fastest and slowest run in brackets, and how busy the emulator process was "
        f"(its CPU seconds ÷ the run's seconds, median; 100 % = one core). Every run gets a fresh emulator "
        f"process and a fresh bucket or container, `sync` done and the source read into the page cache, and "
        f"is checked afterwards by listing (object count and bytes). Mover: agent → Bifrost → a stored "
        f"destination, {CONCURRENCY} files at once, time from creating the job to its completion. rclone "
        f"{rclone_version()}: `rclone copy --transfers {TRANSFERS}` from the local folder, defaults otherwise. "
        f"Plain client, the emulator's own rate: boto3 `upload_file` ({TRANSFERS} threads) or "
        f"azure-storage-blob `upload_blob(max_concurrency={TRANSFERS})` for the big file, one `put_object` / "
        f"`upload_blob` per small file in {TRANSFERS} threads. The small files are "
        f"{small_bytes / MiB:.0f} MiB in 500 nested folders.",
        "",
        "| Into | Mover | `rclone copy --transfers 8` | rclone time ÷ Mover time | Target ≥1.0× | "
        "Plain client alone |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    write_section("objects", text)


def rclone_version():
    out = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout
    return out.split()[1] if out else "?"


if __name__ == "__main__":
    try:
        main()
    finally:
        kill_all()
