#!/usr/bin/env python3
"""Tables mapped against tables read with pread, side by side in one run.

Runs the measurements the choice of Options::table_reads (custosd
--table-reads) changes, once with each way, alternating (mapped, pread, then
pread, mapped, ...), so that the machine's drift falls on both alike:

  - the subject report and the shred of 10,000 records, in process
    (engine_bench);
  - a shred just after the engine opened and one with its keystore table
    open, keystores of 10,000 and 1,000,000 subjects (shred_bench);
  - the sweep of 1,000 due records spread over stores of 10,000 and
    1,000,000, sync off (sweep_bench);
  - breach scopes of 1,000 disclosures in histories up to 1,000,000 events
    (breach_bench);
  - over RPC: the shred of 10,000 records and the subject report
    (custos_load --scenario, --settle-quiet), and 200,000 pipelined creates
    with custosd's memory split into allocated (RssAnon) and file pages
    (RssFile).

Prints a table of medians (min-max) for each way and the ratio pread /
mapped of the medians, and writes table_reads.json into --out. Usage:

  ./dev build-bench   # or: cmake --build build/release --target ...
  python3 bench/table_reads.py --build build/release [--rounds 2]

The dearest parts (the sweep and the breach scopes, each building a store of
a million) run once per way whatever --rounds says.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ("mapped", "pread")


def run(argv, env_mode, timeout=1800):
    env = dict(os.environ, CUSTOS_BENCH_TABLE_READS=env_mode)
    started = time.time()
    p = subprocess.run(argv, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)} ({env_mode}) failed ({p.returncode}):\n"
                 f"{p.stderr[-2000:]}")
    print(f"  {os.path.basename(argv[0])} {env_mode}: "
          f"{time.time() - started:.1f} s", file=sys.stderr)
    return p.stdout


def gbench(build, binary, flt, mode, out):
    """{metric name: [values]} of one Google Benchmark run: each benchmark's
    real time per iteration, and every counter named like shred_ms_3 (one
    value per timed call) gathered under its prefix."""
    path = os.path.join(build, "bench", binary)
    json_out = os.path.join(out, f"{binary}-{mode}-{time.time_ns()}.json")
    run([path, f"--benchmark_filter={flt}", f"--benchmark_out={json_out}",
         "--benchmark_out_format=json", "--benchmark_repetitions=1"], mode)
    with open(json_out) as f:
        data = json.load(f)
    got = {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        name = b["run_name"]
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
        got.setdefault(f"{name} real_time us", []).append(
            b["real_time"] * scale)
        for key, value in b.items():
            m = re.fullmatch(r"([a-z_]+_ms)_\d+", key)
            if m:
                got.setdefault(f"{name} {m[1][:-3]} us", []).append(
                    value * 1000)
    return got


def load(build, args, mode, out):
    """{metric name: [values]} of one custos_load run against a custosd it
    starts with --table-reads=`mode`."""
    path = os.path.join(build, "bench", "custos_load")
    argv = [path, "--start-server", f"--server-arg=--table-reads={mode}"] + args
    x = json.loads(run(argv, mode, timeout=900))
    with open(os.path.join(out, f"load-{mode}-{time.time_ns()}.json"),
              "w") as f:
        json.dump(x, f)
    label = " ".join(a for a in args if not a.startswith("--settle"))
    got = {}
    if "op_us" in x:
        got[f"rpc {label} us/call"] = list(x["op_us"])
    elif "ops_per_s" in x:
        got[f"rpc {label} us/op"] = [1e6 / x["ops_per_s"]]
    for key in ("peak_rss_kib", "peak_anon_kib", "peak_file_kib"):
        if key in x.get("server", {}):
            got[f"rpc {label} custosd {key[:-4]} MiB"] = [
                x["server"][key] / 1024]
    return got


def merge(into, got):
    for k, v in got.items():
        into.setdefault(k, []).extend(v)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build/release")
    p.add_argument("--out", default=None)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="custos-table-reads-")
    os.makedirs(out, exist_ok=True)
    results = {m: {} for m in MODES}

    def each_way(first, measure):
        order = MODES if first else tuple(reversed(MODES))
        for mode in order:
            merge(results[mode], measure(mode))

    once = [
        lambda m: gbench(a.build, "sweep_bench",
                         "^BM_Sweep1000Due/records:(10000|1000000)/spread:1/"
                         "compact:0/sync:0", m, out),
        lambda m: gbench(a.build, "breach_bench",
                         "^BM_BreachScope/events:[0-9]+/disclosures:1000/"
                         "sync:0", m, out),
    ]
    each_round = [
        lambda m: gbench(a.build, "engine_bench",
                         "^BM_(ProduceSubjectReport|ShredSubject/10000/)",
                         m, out),
        lambda m: gbench(a.build, "shred_bench",
                         "^BM_ShredLatencyKeystoreSize/(10000|1000000)/", m,
                         out),
        lambda m: load(a.build, ["--repeat", "10", "--settle-quiet",
                                 "--scenario", "shred", "--records", "10000"],
                       m, out),
        lambda m: load(a.build, ["--repeat", "3", "--settle-quiet",
                                 "--scenario", "report"], m, out),
        lambda m: load(a.build, ["--warmup", "0", "--count", "200000",
                                 "--no-sync", "--mix", "create=1", "-c", "1",
                                 "-d", "16"], m, out),
    ]
    for r in range(a.rounds):
        print(f"round {r + 1} of {a.rounds}", file=sys.stderr)
        for measure in each_round + (once if r == 0 else []):
            each_way(r % 2 == 0, measure)

    rows = []
    for metric in sorted(set(results["mapped"]) & set(results["pread"])):
        row = {"metric": metric}
        for mode in MODES:
            v = results[mode][metric]
            row[mode] = {"median": statistics.median(v), "min": min(v),
                         "max": max(v), "n": len(v), "values": v}
        row["pread_over_mapped"] = (row["pread"]["median"] /
                                    row["mapped"]["median"])
        rows.append(row)
    with open(os.path.join(out, "table_reads.json"), "w") as f:
        json.dump({"rounds": a.rounds, "rows": rows}, f, indent=1)
    print("| measurement | mapped: median (min-max), n | pread | "
          "pread / mapped |")
    print("|---|---|---|---|")
    for row in rows:
        cells = [f"{row[m]['median']:,.1f} ({row[m]['min']:,.1f}-"
                 f"{row[m]['max']:,.1f}), {row[m]['n']}" for m in MODES]
        print(f"| {row['metric']} | {cells[0]} | {cells[1]} | "
              f"{row['pread_over_mapped']:.2f} |")
    print(f"table_reads: {out}/table_reads.json", file=sys.stderr)


if __name__ == "__main__":
    main()
