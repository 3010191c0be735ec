#!/usr/bin/env python3
"""Mover benchmarks (not tests): generates its data, runs Mover and the named baselines side by
side in one run (median of BENCH_RUNS, default 3), and writes the table into docs/BENCHMARKS.md.

Run through scripts/bench.sh, which installs the baselines' tools and builds release binaries.
"""
from benchlib import (BIG, BIN, BROWSE_ENTRIES, GiB, RUNS, SMALL_FILES, WORK, Agent, Bifrost, NewFolders,
                      big_file, commit, free_port, fresh, kill_all, log, median_of, now_utc, sh, small_files,
                      spawn, tree_bytes, wait_line, wide_folder, drain, write_section)
import os
import shutil
import subprocess
import time
import urllib.parse


def make_data():
    return big_file("src-big", BIG), small_files(), wide_folder()


def start_sshd():
    d = os.path.join(WORK, "ssh")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sh(f"ssh-keygen -q -t ed25519 -N '' -f {d}/host_key && ssh-keygen -q -t ed25519 -N '' -f {d}/client_key")
    shutil.copy(f"{d}/client_key.pub", f"{d}/authorized_keys")
    os.makedirs("/run/sshd", exist_ok=True)
    port = free_port()
    p = spawn(["/usr/sbin/sshd", "-D", "-e", "-p", str(port), "-h", f"{d}/host_key", "-o", "ListenAddress=127.0.0.1",
               "-o", f"AuthorizedKeysFile={d}/authorized_keys", "-o", "PermitRootLogin=prohibit-password",
               "-o", "StrictModes=no", "-o", "UsePAM=no", "-o", "PidFile=none",
               "-o", "Ciphers=aes128-gcm@openssh.com"])
    drain(p)
    rsh = (f"ssh -p {port} -i {d}/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
           f"-o LogLevel=ERROR -c aes128-gcm@openssh.com -o Compression=no")
    for _ in range(50):
        if subprocess.run(f"{rsh} 127.0.0.1 true", shell=True).returncode == 0:
            return rsh
        time.sleep(0.2)
    raise RuntimeError("sshd did not come up")


def main():
    os.makedirs(WORK, exist_ok=True)
    big, small, wide = make_data()
    rsh = start_sshd()
    results = {}
    dest = os.path.join(WORK, "dest")

    bifrost = Bifrost()
    idle_agent = Agent("idle", bifrost.url, bifrost.fingerprint, WORK)
    bifrost.authorize(idle_agent.key, "idle")
    time.sleep(10)
    results["idle_rss"] = idle_agent.proc("VmRSS")
    idle_agent.stop()

    # 1. One big file.
    agent = Agent("big", bifrost.url, bifrost.fingerprint, WORK)
    conn = bifrost.authorize(agent.key, "big")
    cpu0 = agent.cpu_seconds()
    log("1. big file: mover")
    results["big_mover"] = median_of(lambda: bifrost.copy(conn, [f"{big}/big.bin"], dest), fresh(dest, big))
    results["big_cpu_per_gib"] = (agent.cpu_seconds() - cpu0) / (RUNS * BIG / GiB)
    results["big_peak_rss"] = agent.proc("VmHWM")
    agent.stop()
    log("1. big file: cp")
    results["big_cp"] = median_of(lambda: sh(f"cp {big}/big.bin {dest}/"), fresh(dest, big))
    # The same durability as Mover's copy (synced to the disk before it counts as done).
    log("1. big file: cp + sync")
    results["big_cp_sync"] = median_of(lambda: sh(f"cp {big}/big.bin {dest}/ && sync {dest}/big.bin"), fresh(dest, big))
    log("1. big file: rsync over ssh")
    results["big_rsync"] = median_of(lambda: sh(f"rsync -a -e '{rsh}' {big}/big.bin 127.0.0.1:{dest}/"), fresh(dest, big))

    # 2. Many small files: into the disk, and into tmpfs (no writeback: the software path alone).
    small_bytes = tree_bytes(small)
    agent = Agent("small", bifrost.url, bifrost.fingerprint, WORK)
    conn = bifrost.authorize(agent.key, "small")
    targets = [("", dest)]
    if os.path.isdir("/dev/shm"):
        targets.append(("_shm", "/dev/shm/mover-bench-dest"))
    for suffix, base in targets:
        shutil.rmtree(base, ignore_errors=True)
        to = NewFolders(base, small, keep=not suffix)
        cpu0 = agent.cpu_seconds()
        log(f"2. small files{suffix}: mover")
        results[f"small_mover{suffix}"] = median_of(lambda: bifrost.copy(conn, [small], to.path, concurrency=16), to.prepare)
        results[f"small_cpu_per_gib{suffix}"] = (agent.cpu_seconds() - cpu0) / (RUNS * small_bytes / GiB)
        log(f"2. small files{suffix}: cp -r")
        results[f"small_cp{suffix}"] = median_of(lambda: sh(f"cp -r {small} {to.path}/"), to.prepare)
        log(f"2. small files{suffix}: rclone")
        results[f"small_rclone{suffix}"] = median_of(lambda: sh(f"rclone copy --transfers 8 {small} {to.path}/small -q"), to.prepare)
        log(f"2. small files{suffix}: rsync over ssh")
        results[f"small_rsync{suffix}"] = median_of(lambda: sh(f"rsync -a -e '{rsh}' {small} 127.0.0.1:{to.path}/"), to.prepare)
        to.clear()
    results["small_peak_rss"] = agent.proc("VmHWM")

    # 4. Browsing a folder of 200,000 entries.
    log("4. browse")

    def browse():
        path, cursor, n = f"{wide}/folder", None, 0
        while True:
            q = f"path={urllib.parse.quote(path)}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            page = bifrost.api("GET", f"/api/v1/connectors/{conn}/browse?{q}")
            n += len(page["entries"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert n == BROWSE_ENTRIES, n
    results["browse_mover"] = median_of(browse)
    results["browse_find"] = median_of(lambda: sh(f"find {wide}/folder -printf '%s %T@\\n' > /dev/null"))
    agent.stop()

    # 3. The big file through a WAN-like delay proxy, against a raw TLS stream through the same proxy.
    sink_cert = os.path.join(WORK, "sink.der")
    sink = spawn([os.path.join(BIN, "mover-bench"), "tls-sink", "--listen", "127.0.0.1:0", "--cert-out", sink_cert])
    sink_addr = wait_line(sink, r"listening on (\S+)").group(1)
    drain(sink)
    for rtt in (20, 50):
        proxy = spawn([os.path.join(BIN, "mover-bench"), "delay-proxy", "--listen", "127.0.0.1:0",
                       "--target", f"{bifrost.host}:{bifrost.port}", "--rtt-ms", str(rtt)])
        proxy_addr = wait_line(proxy, r"listening on (\S+)").group(1)
        drain(proxy)
        agent = Agent(f"wan{rtt}", f"https://{proxy_addr}", bifrost.fingerprint, WORK)
        conn = bifrost.authorize(agent.key, f"wan{rtt}")
        log(f"3. {rtt} ms: mover")
        results[f"wan{rtt}_mover"] = median_of(lambda: bifrost.copy(conn, [f"{big}/big.bin"], dest), fresh(dest, big))
        agent.stop()
        proxy.kill()
        tls_proxy = spawn([os.path.join(BIN, "mover-bench"), "delay-proxy", "--listen", "127.0.0.1:0",
                           "--target", sink_addr, "--rtt-ms", str(rtt)])
        tls_addr = wait_line(tls_proxy, r"listening on (\S+)").group(1)
        drain(tls_proxy)
        log(f"3. {rtt} ms: raw TLS")
        results[f"wan{rtt}_tls"] = median_of(lambda: sh(
            f"{BIN}/mover-bench tls-send --to {tls_addr} --bytes {BIG} --cert {sink_cert} > /dev/null"))
        tls_proxy.kill()

    results["small_bytes"] = small_bytes
    write_report(results)


def write_report(r):
    mbps = lambda secs, n=BIG: n / secs / 1e6
    fps = lambda secs: SMALL_FILES / secs
    rows = []

    def row(what, mover, baseline, ratio, target, ok):
        rows.append(f"| {what} | {mover} | {baseline} | {ratio:.2f}× | {target} | {'met' if ok else 'missed'} |")

    for name, key, target in (("`cp`", "big_cp", 0.8), ("`cp` then `sync` of the copy", "big_cp_sync", None),
                              ("`rsync -a` over ssh", "big_rsync", 2.0)):
        if key not in r:
            continue
        ratio = r[key] / r["big_mover"]
        row(f"1. {BIG >> 30} GiB file vs {name}", f"{mbps(r['big_mover']):.0f} MB/s ({r['big_mover']:.2f} s)",
            f"{mbps(r[key]):.0f} MB/s ({r[key]:.2f} s)", ratio, f"≥{target}×" if target else "(reference)",
            ratio >= target if target else True)
    for suffix, where in (("", "disk"), ("_shm", "tmpfs")):
        if f"small_mover{suffix}" not in r:
            continue
        mover = r[f"small_mover{suffix}"]
        for name, key, target in (("`cp -r`", "small_cp", None), ("`rclone copy --transfers 8`", "small_rclone", 2.0),
                                  ("`rsync -a` over ssh", "small_rsync", 4.0)):
            base = r[key + suffix]
            ratio = base / mover
            row(f"2. {SMALL_FILES} files into {where} vs {name}", f"{fps(mover):.0f} files/s ({mover:.2f} s)",
                f"{fps(base):.0f} files/s ({base:.2f} s)", ratio, f"≥{target}×" if target else "(reference)",
                ratio >= target if target else True)
    for rtt in (20, 50):
        m, t = r[f"wan{rtt}_mover"], r[f"wan{rtt}_tls"]
        row(f"3. {BIG >> 30} GiB at {rtt} ms RTT vs raw TLS", f"{mbps(m):.0f} MB/s", f"{mbps(t):.0f} MB/s", t / m, "≥0.8×",
            t / m >= 0.8)
    eps = BROWSE_ENTRIES / r["browse_mover"]
    rows.append(f"| 4. browse {BROWSE_ENTRIES} entries | {eps:,.0f} entries/s ({r['browse_mover']:.2f} s) | "
                f"`find -printf`: {BROWSE_ENTRIES / r['browse_find']:,.0f} entries/s ({r['browse_find']:.2f} s) | "
                f"— | ≥100,000 entries/s | {'met' if eps >= 100000 else 'missed'} |")
    mib = 1 << 20
    res = [
        f"| agent CPU per GiB moved, big file | {r['big_cpu_per_gib']:.2f} s | ≤1.0 s | {'met' if r['big_cpu_per_gib'] <= 1 else 'missed'} |",
        f"| agent CPU per GiB moved, small files into disk | {r['small_cpu_per_gib']:.2f} s | ≤1.0 s | {'met' if r['small_cpu_per_gib'] <= 1 else 'missed'} |",
        *([f"| agent CPU per GiB moved, small files into tmpfs | {r['small_cpu_per_gib_shm']:.2f} s | ≤1.0 s | {'met' if r['small_cpu_per_gib_shm'] <= 1 else 'missed'} |"] if "small_cpu_per_gib_shm" in r else []),
        f"| agent idle RSS | {r['idle_rss'] / mib:.1f} MiB | ≤15 MiB | {'met' if r['idle_rss'] <= 15 * mib else 'missed'} |",
        f"| agent peak RSS, big file | {r['big_peak_rss'] / mib:.1f} MiB | ≤64 MiB | {'met' if r['big_peak_rss'] <= 64 * mib else 'missed'} |",
        f"| agent peak RSS, small files | {r['small_peak_rss'] / mib:.1f} MiB | ≤64 MiB | {'met' if r['small_peak_rss'] <= 64 * mib else 'missed'} |",
    ]
    text = "\n".join([
        f"Run {now_utc()} on commit {commit()}, {os.cpu_count()} cores, "
        f"median of {RUNS} runs, release builds, loopback; data in `{WORK}`, read just before every run so that each tool starts from a warm page cache. "
        f"Mover's time runs from creating the job to its completion (listing, copying, BLAKE3 both ends, "
        f"fsync of every file, rename); the small files are {r['small_bytes'] / mib:.0f} MiB in all; "
        f"Mover copies them 16 requests at a time (batches of up to 128 files).",
        "",
        "| Scenario | Mover | Baseline | Baseline time ÷ Mover time | Target | |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "| Agent resources | Measured | Target | |",
        "|---|---|---|---|",
        *res,
    ])
    write_section("results", text)


if __name__ == "__main__":
    try:
        if os.environ.get("BENCH_BINARIES_BEFORE"):
            # Scenarios 1 and 2 only, with the binaries in that folder and this build alternating.
            import bench_compare
            bench_compare.main(os.environ["BENCH_BINARIES_BEFORE"])
        else:
            main()
    finally:
        kill_all()
