#!/usr/bin/env python3
"""Times locksmith against restic on the same repository in one run and prints ratios.

A repository is made by `restic init` (so its key is calibrated like a user's), then
filled with sealed locks. Runs alternate between the tools so that drift in the machine's
speed hits both alike; medians are compared.

    benches/compare.py [--rounds 5] [--loop-runs 1] [--skip-loop] [--skip-backends]

With backends (rclone on PATH, as scripts/test installs it; cargo builds the S3 server of
benches/s3-server), the same 1,000 locks are also read over restic's REST protocol
(`rclone serve restic`) and S3, directly and through a proxy that delays every request
by 20 ms. Both servers share this machine's cores with the client, and what they spend
there is printed beside the ratios: on a small machine it is a large part of the run.
"""
import argparse
import asyncio
import socket
import threading
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCKSMITH = os.path.join(ROOT, "target", "release", "locksmith")
S3_SERVER_DIR = os.path.join(ROOT, "benches", "s3-server")
S3_SERVER = os.path.join(S3_SERVER_DIR, "target", "release", "locksmith-bench-s3")
FORGE = os.path.join(ROOT, "target", "release", "examples", "forge")


def sh(cmd, env, **kw):
    return subprocess.run(cmd, env=env, check=True, **kw)


def timed(cmd, env):
    """Wall seconds and peak RSS (KiB) of one run."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{cmd[0]} failed: {p.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss


def fill(repo, pwfile, count, env):
    locks = os.path.join(repo, "locks")
    shutil.rmtree(locks, ignore_errors=True)
    os.makedirs(locks)
    sh([FORGE, "seal-many", repo, pwfile, str(count)], env)


def cpu_seconds(pid):
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alternate(cmds, rounds, env, server=None):
    """Median wall seconds of each command; with `server` (a process), also the median CPU
    seconds the server spent on each command's runs."""
    times = {name: [] for name in cmds}
    spent = {name: [] for name in cmds}
    for _ in range(rounds):
        for name, cmd in cmds.items():
            before = cpu_seconds(server.pid) if server else 0
            times[name].append(timed(cmd, env)[0])
            spent[name].append(cpu_seconds(server.pid) - before if server else 0)
    med = {name: statistics.median(t) for name, t in times.items()}
    if server is None:
        return med
    return med, {name: statistics.median(t) for name, t in spent.items()}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, port):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit(f"{cmd[0]} did not start")


def delaying_proxy(upstream, delay):
    """A TCP proxy on loopback that holds every chunk from the client for `delay` seconds
    (one chunk is one request here): a network `delay` away, per request."""
    port = free_port()

    async def pipe(reader, writer, wait):
        try:
            while data := await reader.read(65536):
                if wait:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(cr, cw):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, uw, True), pipe(ur, cw, False))

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    time.sleep(0.3)
    return port


def backends(tmp, repo, env, rounds, kdf):
    procs = []
    # The served trees live in memory (tmpfs) when the machine has one: rclone's local
    # backend drops each file from the page cache after reading it, so from a disk every
    # GET becomes a disk read, and its kernel time lands on the cores the client uses.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else tmp
    served = tempfile.mkdtemp(prefix="locksmith-bench-", dir=shm)
    try:
        shutil.copytree(repo, os.path.join(served, "rest", "repo"))
        shutil.copytree(repo, os.path.join(served, "s3", "bench", "repo"))
        rest_port = free_port()
        procs.append(start(["rclone", "serve", "restic", "--addr", f"127.0.0.1:{rest_port}",
                            os.path.join(served, "rest")], rest_port))
        s3_port = free_port()
        procs.append(start([S3_SERVER, os.path.join(served, "s3"), str(s3_port), "bench", "bench-secret"], s3_port))
        s3env = dict(env, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
        s3env.pop("AWS_CA_BUNDLE", None)
        print(f"\n{'1,000 locks':<11}  {'locksmith --json':>16}  {'restic list locks':>17}  {'ratio':>6}  "
              f"(target <= 0.6x)  server CPU per run: locksmith / restic")
        targets = {
            "REST": (f"rest:http://127.0.0.1:{rest_port}/repo/", env, procs[0], rest_port),
            "S3": (f"s3:http://127.0.0.1:{s3_port}/bench/repo", s3env, procs[1], s3_port),
        }
        for name, (url, e, server, _) in targets.items():
            e = dict(e, RESTIC_REPOSITORY=url)
            med, cpu = alternate({
                "locksmith": [LOCKSMITH, "locks", "--json"],
                "restic": ["restic", "list", "locks"],
            }, rounds, e, server)
            print(f"{name:<11}  {med['locksmith']:>14.3f} s  {med['restic']:>15.3f} s  "
                  f"{med['locksmith'] / med['restic']:>5.2f}x  {'':16}  {cpu['locksmith']:.2f} s / {cpu['restic']:.2f} s")
        print(f"\nwith 20 ms added to every request (target: under key derivation {kdf:.3f} s + 2 s = {kdf + 2:.3f} s)")
        for name, (url, e, _, port) in targets.items():
            proxy = delaying_proxy(port, 0.020)
            url = url.replace(f":{port}/", f":{proxy}/")
            t = statistics.median(timed([LOCKSMITH, "locks", "--json"], dict(e, RESTIC_REPOSITORY=url))[0] for _ in range(rounds))
            print(f"{name:<11}  locksmith {t:.3f} s: {'within' if t <= kdf + 2 else 'OVER'} the target")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(served, ignore_errors=True)


def cpu_model_and_flags():
    model, flags = "unknown", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return model, flags


def restics():
    """restic on PATH, then those LOCKSMITH_RESTICS names (scripts/restic-versions)."""
    found = [shutil.which("restic")]
    found += [p for p in os.environ.get("LOCKSMITH_RESTICS", "").split(":") if p]
    found += sorted(
        os.path.join(ROOT, "target", "restic", f)
        for f in os.listdir(os.path.join(ROOT, "target", "restic"))
        if f.startswith("restic-")
    ) if os.path.isdir(os.path.join(ROOT, "target", "restic")) else []
    out, seen = [], set()
    for p in found:
        if p and os.path.exists(p) and os.path.realpath(p) not in seen:
            seen.add(os.path.realpath(p))
            version = subprocess.run([p, "version"], capture_output=True, text=True).stdout.split()[1]
            out.append((version, p))
    return out


def chosen_engine():
    """The engine `locksmith --version` names (`avx512, paired`): the one it timed fastest."""
    v = subprocess.run([LOCKSMITH, "--version"], capture_output=True, text=True).stdout
    return v.split("scrypt: ", 1)[1].strip().rstrip(")") if "scrypt: " in v else None


def per_lane(tmp, repo, pwfile, env, rounds):
    """Seconds per scrypt lane (N=2^15, r=8) on one core (`taskset -c 0`), for locksmith
    with each core this CPU runs (lanes one at a time, and paired), each restic on the
    machine and OpenSSL: each tool opens the repository with a p=1, a p=2 and a p=8 key
    (hinted, so one derivation each); the difference of p=8 and p=1 over 7 is one lane
    (of p=8 and p=2 over 6 where lanes are paired), start-up and I/O cancelled out. Returns the dispatched core's unpaired lane: what the cores run."""
    model, flags = cpu_model_and_flags()
    dispatched = subprocess.run([LOCKSMITH, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"\nper lane, one core (taskset -c 0), N=32768 r=8: CPU {model}; "
          f"AVX2 {'yes' if 'avx2' in flags else 'no'}, AVX-512VL "
          f"{'yes' if {'avx512f', 'avx512vl'} <= flags else 'no'}; {dispatched}")
    keys = {}
    for p in (1, 2, 8):
        pw = os.path.join(tmp, f"pw-p{p}")
        with open(pw, "w") as f:
            f.write(f"lane-bench-{p}\n")
        kid = sh([FORGE, "add-key", repo, pwfile, pw, "32768", "8", str(p)], env,
                 capture_output=True, text=True).stdout.strip()
        keys[p] = (pw, kid)
    cores = ["scalar", "sse2"] if "sse2" in flags else ["scalar"]
    if {"avx512f", "avx512vl"} <= flags:
        cores.insert(0, "avx512")
    # Each core one lane at a time (as on several cores) and, where it pairs lanes, two
    # interleaved (what one core runs).
    tools = {}
    for c in cores:
        tools[f"locksmith ({c})"] = ([LOCKSMITH, "locks", "--json"],
                                     {"LOCKSMITH_SCRYPT_CORE": c, "LOCKSMITH_SCRYPT_PAIRS": "0"})
        if c != "scalar":
            tools[f"locksmith ({c}, paired)"] = ([LOCKSMITH, "locks", "--json"],
                                                 {"LOCKSMITH_SCRYPT_CORE": c, "LOCKSMITH_SCRYPT_PAIRS": "1"})
    for version, path in restics():
        tools[f"restic {version}"] = ([path, "--no-cache", "--no-lock", "list", "locks"], {})
    times = {name: {1: [], 2: [], 8: []} for name in tools}
    # Tool by tool, each after an untimed p=8 run: a process that needs more memory than
    # the one before it (another tool, a smaller key) waits for the kernel to assemble
    # huge pages, up to 70 ms here, which would land on whichever key came first.
    for _ in range(rounds):
        for name, (cmd, extra) in tools.items():
            for i, (p, (pw, kid)) in enumerate([(8, keys[8])] + list(keys.items())):
                e = dict(env, RESTIC_PASSWORD_FILE=pw, RESTIC_KEY_HINT=kid, **extra)
                t, _ = timed(["taskset", "-c", "0"] + cmd, e)
                if i > 0:
                    times[name][p].append(t)
    # Paired: p=2 is one pair and p=8 four, so their difference over 6 is a lane's share.
    lanes = {n: (statistics.median(t[8]) - statistics.median(t[2])) / 6 if "paired" in n
             else (statistics.median(t[8]) - statistics.median(t[1])) / 7
             for n, t in times.items()}
    code = ("import hashlib,time,statistics\nts=[]\nfor _ in range(%d):\n t=time.perf_counter();"
            "hashlib.scrypt(b'pw',salt=b's'*64,n=32768,r=8,p=1,maxmem=64<<20,dklen=64);"
            "ts.append(time.perf_counter()-t)\nprint(statistics.median(ts))" % rounds)
    lanes["OpenSSL (hashlib.scrypt)"] = float(subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    go = [v for n, v in lanes.items() if n.startswith("restic")]
    for name, lane in lanes.items():
        vs = f"  {lane / min(go):.2f}x the fastest restic" if go else ""
        print(f"  {name:<28} {lane * 1000:6.1f} ms{vs}")
    ours = lanes.get(f"locksmith ({chosen_engine()})")
    return ours


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loop-runs", type=int, default=1, help="runs of the per-ID restic loop")
    ap.add_argument("--skip-loop", action="store_true", help="skip the slow per-ID loop")
    ap.add_argument("--skip-backends", action="store_true", help="skip REST and S3")
    args = ap.parse_args()

    sh(["cargo", "build", "-q", "--release", "--bin", "locksmith", "--example", "forge"], None, cwd=ROOT)
    if not args.skip_backends:
        sh(["cargo", "build", "-q", "--release"], None, cwd=S3_SERVER_DIR)
    tmp = tempfile.mkdtemp(prefix="locksmith-bench-")
    try:
        repo = os.path.join(tmp, "repo")
        pwfile = os.path.join(tmp, "pw")
        with open(pwfile, "w") as f:
            f.write("bench-password\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(RESTIC_REPOSITORY=repo, RESTIC_PASSWORD_FILE=pwfile,
                   RESTIC_CACHE_DIR=os.path.join(tmp, "cache"))
        sh(["restic", "init", "-q", "--repository-version", "2"], env)
        key_file = os.path.join(repo, "keys", os.listdir(os.path.join(repo, "keys"))[0])
        cores = os.cpu_count()
        print(f"machine: {cores} cores; restic: "
              + subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip())

        # The floor is the chosen engine on one thread (lanes paired there when it pairs),
        # its work spread perfectly over the cores.
        engine = chosen_engine()
        print(f"scrypt engine chosen by measurement: {engine}")
        single = sh([FORGE, "kdf-time", key_file, pwfile], dict(env, RAYON_NUM_THREADS="1"),
                    capture_output=True, text=True).stdout.split()
        par = sh([FORGE, "kdf-time", key_file, pwfile], env, capture_output=True, text=True).stdout.split()
        p = int(single[3].split("=")[1])
        floor = float(single[0]) / min(p, cores)
        print(f"\nkey derivation ({' '.join(single[1:])}): {engine} on one thread {float(single[0]):.3f} s, "
              f"floor {floor:.3f} s, locksmith {float(par[0]):.3f} s = {float(par[0]) / floor:.2f}x the floor (target <= 1.15x)")

        lane = per_lane(tmp, repo, pwfile, env, args.rounds)
        for f in os.listdir(os.path.join(repo, "keys")):
            if os.path.join(repo, "keys", f) != key_file:
                os.remove(os.path.join(repo, "keys", f))
        bound = -(-p // cores) * lane + 0.010 if lane else None

        print(f"\n{'locks':>6}  {'locksmith --json':>16}  {'restic list locks':>17}  {'ratio':>6}  (target <= 0.35x on 2 cores)")
        results = {}
        for count in (3, 100, 1000):
            fill(repo, pwfile, count, env)
            med = alternate({
                "locksmith": [LOCKSMITH, "locks", "--json"],
                "restic": ["restic", "list", "locks"],
            }, args.rounds, env)
            results[count] = med
            print(f"{count:>6}  {med['locksmith']:>14.3f} s  {med['restic']:>15.3f} s  {med['locksmith'] / med['restic']:>5.2f}x")
        if bound:
            print(f"ceil(p/cores) = {-(-p // cores)} lanes + 10 ms = {bound:.3f} s; "
                  f"locksmith, 3 locks: {results[3]['locksmith']:.3f} s")

        if not args.skip_loop:
            fill(repo, pwfile, 100, env)
            ids = sh(["restic", "list", "locks"], env, capture_output=True, text=True).stdout.split()
            loops = []
            for _ in range(args.loop_runs):
                start = time.perf_counter()
                for i in ids:
                    sh(["restic", "--no-lock", "cat", "lock", i], env, stdout=subprocess.DEVNULL)
                loops.append(time.perf_counter() - start)
            loop = statistics.median(loops)
            ours = results[100]["locksmith"]
            print(f"\n100 locks, full detail: restic list + cat lock per ID {loop:.1f} s, "
                  f"locksmith {ours:.3f} s: {loop / ours:.0f}x faster (target >= 100x)")

        if not args.skip_backends:
            fill(repo, pwfile, 1000, env)
            backends(tmp, repo, env, args.rounds, float(par[0]))

        # A p=7 key (restic calibrates p to the machine that writes the key: 4 to 8 on
        # the machines this project sees), hinted for both tools.
        pw7 = os.path.join(tmp, "pw-p7")
        with open(pw7, "w") as f:
            f.write("p7-bench\n")
        kid = sh([FORGE, "add-key", repo, pwfile, pw7, "32768", "8", "7"], env,
                 capture_output=True, text=True).stdout.strip()
        fill(repo, pwfile, 3, env)
        seven = alternate({
            "locksmith": [LOCKSMITH, "locks", "--json"],
            "restic": ["restic", "list", "locks"],
        }, args.rounds, dict(env, RESTIC_PASSWORD_FILE=pw7, RESTIC_KEY_HINT=kid))
        print(f"\np=7 key, 3 locks, {cores} cores: locksmith {seven['locksmith']:.3f} s, restic "
              f"{seven['restic']:.3f} s = {seven['locksmith'] / seven['restic']:.2f}x "
              f"(target <= 0.35x, aim 0.2x)")
        os.remove(os.path.join(repo, "keys", kid))

        # One core: both tools under `taskset -c 0`, alternating.
        fill(repo, pwfile, 3, env)
        one = alternate({
            "locksmith": ["taskset", "-c", "0", LOCKSMITH, "locks", "--json"],
            "restic": ["taskset", "-c", "0", "restic", "list", "locks"],
        }, args.rounds, env)
        print(f"\none core (taskset -c 0), 3 locks: locksmith {one['locksmith']:.3f} s, restic "
              f"{one['restic']:.3f} s = {one['locksmith'] / one['restic']:.2f}x (target <= 0.5x)")

        fill(repo, pwfile, 10000, env)
        for budget, target in ((None, 256), ("64MiB", 100)):
            e = dict(env, LOCKSMITH_SCRYPT_MEMORY=budget) if budget else env
            t, rss = timed([LOCKSMITH, "locks", "--json"], e)
            print(f"\n10,000 locks, lanes' memory {budget or 'default (256MiB)'}: locksmith {t:.3f} s, "
                  f"peak memory {rss / 1024:.1f} MiB (target <= {target} MiB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
