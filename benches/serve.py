#!/usr/bin/env python3
"""`locksmith serve` at fleet size, against what an exporter must do today for the same
detail (`restic list locks`, then `restic --no-lock cat lock` per ID), in one run.

    benches/serve.py [--repos 100] [--locks 100] [--steady 120] [--cat 20]

One repository is made by `restic init` (its key calibrated like a user's) and filled
with sealed locks; it is copied `--repos` times under one `rclone serve restic`. serve
watches them all at a 60 s interval. Printed: the time until every first refresh is done
beside the time of the key derivations alone, /metrics latency, CPU over `--steady`
seconds of steady state, peak RSS, and the restic-based exporter's cost per refresh
(measured on `--cat` IDs of one repository, scaled to the fleet).
Needs: restic, rclone, and `cargo build --release --bin locksmith --example forge`.
"""
import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCKSMITH = os.path.join(ROOT, "target", "release", "locksmith")
FORGE = os.path.join(ROOT, "target", "release", "examples", "forge")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    start = time.time()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.time() - start > 30:
                sys.exit(f"{what} did not start")
            time.sleep(0.05)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid, field="VmHWM"):
    """Peak (VmHWM) or current (VmRSS) resident memory."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def get(url):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read().decode()
    return body, time.perf_counter() - start


def refreshed(metrics):
    return sum(
        1
        for line in metrics.splitlines()
        if line.startswith("locksmith_refresh_success{") and line.endswith(" 1")
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=100)
    ap.add_argument("--locks", type=int, default=100)
    ap.add_argument("--steady", type=int, default=120)
    ap.add_argument("--cat", type=int, default=20)
    a = ap.parse_args()
    for tool in (LOCKSMITH, FORGE):
        if not os.path.exists(tool):
            sys.exit(f"{tool} missing: cargo build --release --bin locksmith --example forge")
    work = tempfile.mkdtemp(prefix="locksmith-serve-bench-")
    env = dict(os.environ, RESTIC_PASSWORD="bench-password", RESTIC_CACHE_DIR=os.path.join(work, "cache"))
    pw = os.path.join(work, "pw")
    with open(pw, "w") as f:
        f.write("bench-password\n")
    root = os.path.join(work, "root")
    template = os.path.join(root, "r0")
    subprocess.run(["restic", "init", "-q", "--repo", template], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([FORGE, "seal-many", template, pw, str(a.locks)], env=env, check=True)
    for i in range(1, a.repos):
        shutil.copytree(template, os.path.join(root, f"r{i}"))
    rport = free_port()
    rclone = subprocess.Popen(
        ["rclone", "serve", "restic", "--addr", f"127.0.0.1:{rport}", root],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(rport, rclone, "rclone serve restic")
    url = lambda i: f"rest:http://127.0.0.1:{rport}/r{i}/"
    try:
        print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
        print(f"{a.repos} repositories x {a.locks} locks behind rclone serve restic\n")

        # The key derivations alone: one one-shot run (key derivation dominates it).
        one = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([LOCKSMITH, "-r", url(0), "locks", "--json"], env=env, check=True, stdout=subprocess.DEVNULL)
            one.append(time.perf_counter() - start)
        per_key = statistics.median(one)
        print(f"one-shot locks --json on one repository: {per_key:.2f} s (median of 3)")

        fleet = os.path.join(work, "fleet.toml")
        with open(fleet, "w") as f:
            f.write("interval = 60\n")
            for i in range(a.repos):
                f.write(f'\n[[repository]]\nname = "r{i}"\nrepository = "{url(i)}"\npassword_file = "{pw}"\n')
        port = free_port()
        start = time.perf_counter()
        serve = subprocess.Popen(
            [LOCKSMITH, "serve", "--config", fleet, "--listen", f"127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(port, serve, "locksmith serve")
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        while refreshed(get(metrics_url)[0]) < a.repos:
            if time.perf_counter() - start > 600:
                sys.exit("first refreshes not done within 600 s")
            time.sleep(0.2)
        first = time.perf_counter() - start
        print(f"all {a.repos} first refreshes: {first:.1f} s "
              f"(key derivations alone, {a.repos} x one-shot: {a.repos * per_key:.1f} s; bound + 5 s: {a.repos * per_key + 5:.1f} s)")

        lat = sorted(get(metrics_url)[1] for _ in range(100))
        body = get(metrics_url)[0]
        print(f"/metrics ({len(body) // 1024} KiB): median {statistics.median(lat) * 1000:.1f} ms, "
              f"p99 {lat[98] * 1000:.1f} ms")

        c0, t0 = cpu_seconds(serve.pid), time.perf_counter()
        time.sleep(a.steady)
        c1, t1 = cpu_seconds(serve.pid), time.perf_counter()
        steady = (c1 - c0) / (t1 - t0) * 100
        reads = sum(
            float(l.rsplit(" ", 1)[1])
            for l in get(metrics_url)[0].splitlines()
            if l.startswith("locksmith_lock_files_read_total{")
        )
        print(f"steady state over {a.steady} s at a 60 s interval: {steady:.2f}% of one core; "
              f"lock files read in all: {reads:.0f} (= {a.repos} x {a.locks}: each once)")
        print(f"RSS of serve: peak {rss_mib(serve.pid):.0f} MiB, now {rss_mib(serve.pid, 'VmRSS'):.0f} MiB")
        serve.terminate()
        serve.wait(timeout=10)

        # Today's exporter for the same detail: list, then cat each lock, every refresh.
        start = time.perf_counter()
        ids = subprocess.run(["restic", "-r", url(0), "--no-lock", "list", "locks"], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        list_s = time.perf_counter() - start
        cats = []
        for i in ids[: a.cat]:
            s = time.perf_counter()
            subprocess.run(["restic", "-r", url(0), "--no-lock", "cat", "lock", i], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            cats.append(time.perf_counter() - s)
        per_cat = statistics.median(cats)
        per_repo = list_s + per_cat * len(ids)
        print(f"\nrestic-based exporter: list {list_s:.2f} s + {len(ids)} x cat {per_cat:.2f} s "
              f"= {per_repo:.0f} s per repository per refresh ({a.cat} cats timed), "
              f"{per_repo * a.repos / 60:.0f} min for the fleet, every refresh")
    finally:
        rclone.terminate()
        rclone.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
