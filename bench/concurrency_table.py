#!/usr/bin/env python3
"""The tables of bench/RESULTS.md, "Group commit and create cost (issue 8)",
from concurrency_bench's JSON output (--benchmark_out=FILE
--benchmark_out_format=json, with --benchmark_repetitions).

Every figure is the median over the repetitions of items/s (all threads
together); the range of the repetitions is given in brackets.

Usage: concurrency_table.py BENCH.json
"""

import json
import statistics
import sys

SCALING = [
    ("create, existing subject", "BM_SyncCreateExistingSubject"),
    ("create, new subject", "BM_SyncCreateNewSubject"),
    ("disclosing read", "BM_SyncDisclosingRead"),
    ("raw LevelDB put", "BM_RawSyncPut"),
]
THREADS = (1, 4, 16)
COST = [
    ("create, existing subject", "BM_CreateExistingSubject",
     "BM_RawPutLikeCreateExistingSubject", "put"),
    ("create, new subject", "BM_CreateNewSubject",
     "BM_RawPutLikeCreateNewSubject", "put"),
    ("disclosing read", "BM_DisclosingRead",
     "BM_RawGetPutLikeDisclosingRead", "get + put"),
]


def load(path):
    runs = {}
    cpu = {}
    counters = {}
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    with open(path) as f:
        for b in json.load(f)["benchmarks"]:
            if b.get("run_type") != "iteration" or "error_occurred" in b:
                continue
            runs.setdefault(b["run_name"], []).append(b["items_per_second"])
            cpu.setdefault(b["run_name"], []).append(
                b["cpu_time"] * scale[b["time_unit"]])
            counters[b["run_name"]] = b
    return runs, cpu, counters


def fmt(x):
    return f"{x:,.0f}"


def cell(values):
    return (f"{fmt(statistics.median(values))} "
            f"({fmt(min(values))}–{fmt(max(values))})")


def main():
    runs, cpu, counters = load(sys.argv[1])

    def get(name):
        return runs.get(name)

    print("| synced, items/s | 1 thread | 4 threads | 16 threads "
          "| 4 / 1 | **16 / 1** |")
    print("|---|---:|---:|---:|---:|---:|")
    raw16 = None
    rows = []
    for label, bench in SCALING:
        vals = [get(f"{bench}/real_time/threads:{t}") for t in THREADS]
        if any(v is None for v in vals):
            continue
        med = [statistics.median(v) for v in vals]
        rows.append((label, bench, med))
        print(f"| {label} | " + " | ".join(cell(v) for v in vals) +
              f" | {med[1] / med[0]:.2f} | **{med[2] / med[0]:.2f}** |")
        if bench == "BM_RawSyncPut":
            raw16 = med[2] / med[0]
    if raw16:
        print()
        for label, bench, med in rows:
            if bench != "BM_RawSyncPut":
                print(f"- {label}: 16/1 = {med[2] / med[0]:.2f}, "
                      f"{med[2] / med[0] / raw16:.2f} of raw LevelDB's "
                      f"{raw16:.2f}")
    print()
    print("| sync off, 1 thread | engine items/s | engine µs/op "
          "| raw | raw items/s | raw µs/op | log bytes per op "
          "| **engine / raw** | same, from CPU time |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for label, engine, raw, what in COST:
        e, r = get(f"{engine}/real_time"), get(f"{raw}/real_time")
        if e is None or r is None:
            continue
        em, rm = statistics.median(e), statistics.median(r)
        log_bytes = counters[f"{raw}/real_time"].get("log_bytes", 0)
        # CPU time of the calling thread per operation, µs: less disturbed
        # by other processes than wall time on a busy machine.
        ec = statistics.median(cpu[f"{engine}/real_time"])
        rc = statistics.median(cpu[f"{raw}/real_time"])
        print(f"| {label} | {cell(e)} | {1e6 / em:.1f} | {what} | {cell(r)} "
              f"| {1e6 / rm:.1f} | {log_bytes:,.0f} | **{em / rm:.3f}** "
              f"| {rc / ec:.3f} ({ec:.1f} / {rc:.1f} µs) |")


if __name__ == "__main__":
    main()
