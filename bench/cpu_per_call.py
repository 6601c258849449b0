#!/usr/bin/env python3
"""CPU time per call of custosd (or echo_server) and of the client, under a
custos_load run (bench/RESULTS.md, "Issue 12: fewer hand-offs per call").

    bench/cpu_per_call.py --build build/release [--window 4,9] -- \\
        --no-sync --mix create=1 -c 1 -d 16
    bench/cpu_per_call.py --build build/release -- --in-process --no-sync \\
        [--batch 8]

Starts `custos_load --start-server --duration 10 --warmup 1 ARGS...` (the
duration and warm-up may be overridden in ARGS), finds the server it
started (its child), and reads utime + stime (/proc/PID/stat) and the
context switches of every thread (/proc/PID/task/*/status) of both
processes at the two instants of --window (seconds after the start), then
divides by the calls completed in between: the run's throughput
(custos_load's ops_per_s) times the window's length. Prints one JSON
object: the load's figures and, per process, CPU per call (us), the share
of it in the kernel, and context switches per call; for custosd also per
thread group (CPU us, voluntary and involuntary switches per call) and
the creates per records-database write (from its /metrics). With
--in-process, the tool's own threads (the caller, LevelDB's background
thread) are the "server".
"""

import argparse
import glob
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    """(user seconds, system seconds) of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def threads(pid, workers):
    """{group: [user s, system s, voluntary, involuntary switches]}, summed
    over the threads of each group: "loop" (the main thread), "workers"
    (the first `workers` threads named "custosd-worker" to start), and
    "other" (LevelDB's background thread, which inherits the name of the
    worker that first wrote: told apart by its later start)."""
    groups = {}
    named = []
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(f"{task}/comm") as f:
                if f.read().strip() == "custosd-worker":
                    with open(f"{task}/stat") as g:
                        start = int(g.read().rsplit(")", 1)[1].split()[19])
                    named.append((start, int(task.rsplit("/", 1)[1])))
        except (FileNotFoundError, ProcessLookupError):
            continue
    worker_tids = set(t for _, t in sorted(named)[:workers])
    for task in glob.glob(f"/proc/{pid}/task/*"):
        tid = int(task.rsplit("/", 1)[1])
        try:
            with open(f"{task}/comm") as f:
                comm = f.read().strip()
            with open(f"{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            vol = invol = 0
            with open(f"{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol = int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):  # Just ended.
            continue
        group = ("loop" if tid == pid else
                 "workers" if tid in worker_tids else "other")
        g = groups.setdefault(group, [0.0, 0.0, 0, 0])
        g[0] += int(fields[11]) / TICK
        g[1] += int(fields[12]) / TICK
        g[2] += vol
        g[3] += invol
    return groups


def store_writes(port):
    """custosd's records-database writes so far (its /metrics)."""
    if port is None:
        return None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("custos_store_writes_total "):
                return float(line.split()[1])
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def sample(pid, workers):
    u, s = cpu(pid)
    groups = threads(pid, workers)
    v = sum(g[2] for g in groups.values())
    i = sum(g[3] for g in groups.values())
    return {"user": u, "sys": s, "vol": v, "invol": i, "threads": groups,
            "tasks": tasks(pid)}


def tasks(pid):
    """{tid: (user s, system s)}."""
    out = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(f"{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[task] = (int(fields[11]) / TICK, int(fields[12]) / TICK)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build/release")
    p.add_argument("--window", default="4,9")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    args = [x for x in a.args if x != "--"]
    workers = 4  # custosd's default
    for x in args:
        if x.startswith("--server-arg=--workers="):
            workers = int(x.rsplit("=", 1)[1])
    t0_s, t1_s = (float(x) for x in a.window.split(","))
    load = os.path.join(a.build, "bench", "custos_load")
    in_process = "--in-process" in args
    argv = [load] + ([] if in_process else ["--start-server"])
    argv += ["--duration", "10", "--warmup", "1"] + args
    # custosd's metrics, for its writes (not for the echo server).
    port = None if "--echo" in args or in_process else free_port()
    if port is not None:
        argv.append(f"--server-arg=--metrics-port={port}")
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    samples = []
    server = None
    for at in (t0_s, t1_s):
        time.sleep(max(0.0, start + at - time.monotonic()))
        if server is None and in_process:
            server = proc.pid  # The engine's threads are the tool's own.
        if server is None:
            kids = children(proc.pid)
            if len(kids) != 1:
                proc.kill()
                sys.exit(f"expected one server child, found {kids}")
            server = kids[0]
        samples.append((time.monotonic(), sample(server, workers),
                        sample(proc.pid, 0), store_writes(port)))
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"custos_load failed: {err}")
    result = json.loads(out)
    window = samples[1][0] - samples[0][0]
    calls = result["ops_per_s"] * window
    report = {"argv": " ".join(argv[1:]), "ops_per_s": result["ops_per_s"],
              "us_per_op": 1e6 / result["ops_per_s"],
              "p50_us": result["latency_us"]["p50"],
              "p99_us": result["latency_us"]["p99"],
              "window_s": round(window, 3), "calls_in_window": round(calls)}
    if port is not None:
        writes = samples[1][3] - samples[0][3]
        report["calls_per_store_write"] = round(calls / writes, 2)
    for i, who in ((1, "server"), (2, "client"))[:1 if in_process else 2]:
        b, e = samples[0][i], samples[1][i]
        user, sys_ = e["user"] - b["user"], e["sys"] - b["sys"]
        report[who] = {
            "cpu_us_per_call": round((user + sys_) * 1e6 / calls, 2),
            "sys_share": round(sys_ / (user + sys_), 3) if user + sys_ else 0,
            "cores_busy": round((user + sys_) / window, 3),
            "vol_switches_per_call": round((e["vol"] - b["vol"]) / calls, 3),
            "invol_switches_per_call":
                round((e["invol"] - b["invol"]) / calls, 3),
        }
        if in_process:
            # Per thread, busiest first: CPU us per call (the caller, then
            # LevelDB's background thread).
            per = []
            for task, t1 in e["tasks"].items():
                t0 = b["tasks"].get(task, (0.0, 0.0))
                per.append(round((t1[0] + t1[1] - t0[0] - t0[1]) * 1e6 / calls,
                                 2))
            report[who]["threads"] = sorted(per, reverse=True)
        elif who == "server":
            # Per thread group: CPU us, voluntary and involuntary switches,
            # per call (threads that started or ended in the window count
            # from zero or not at all).
            for group, g1 in sorted(e["threads"].items()):
                g0 = b["threads"].get(group, [0.0, 0.0, 0, 0])
                report[who][group] = [
                    round((g1[0] + g1[1] - g0[0] - g0[1]) * 1e6 / calls, 2),
                    round((g1[2] - g0[2]) / calls, 3),
                    round((g1[3] - g0[3]) / calls, 3)]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
