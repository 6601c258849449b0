#!/usr/bin/env python3
"""Issue 16's side-by-side comparison in one command (bench/README.md).

Runs the benchmark binaries of a Release build (Custos in-process, raw
LevelDB, Custos over RPC with custos_load, a bare Cap'n Proto echo, and the
PostgreSQL 15 peers, each of which starts its own throwaway server), pairs
the figures, prints a table, and writes:

  OUT/compare.json        every figure, every ratio, the machine
  OUT/raw/*.json          each binary's own output
  OUT/growth.dat, bench/growth.png   the growth table and its plot (the
                                     plot in OUT with --no-results-md)
  bench/RESULTS.md        the section between the compare markers, replaced

Usage: bench/compare.py --build build/release [--quick] [--out DIR]
       [--repetitions N] [--no-results-md] [--only NAME,...]

Normally run by `./dev bench [--quick]`, which installs what is missing and
builds first. The runs are not part of ctest or CI; the arithmetic is
(bench/compare_test.py, ctest's compare_py_test).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN = "<!-- compare.py: begin (generated; edits are overwritten) -->"
END = "<!-- compare.py: end -->"


# ---- Running ---------------------------------------------------------------

class Runs(dict):
    """{run_name: [one dict per repetition]} of one binary's run; `group`
    names that run (its repetitions were interleaved)."""
    group = None


class Runner:
    def __init__(self, build, out, quick, reps, only, replay=False):
        self.replay = replay  # Read OUT/raw/ of an earlier run, run nothing.
        self.build = build
        self.out = out
        self.quick = quick
        self.reps = reps
        self.only = only
        self.log = []  # (name, command, seconds, exit)
        self.half_sync_off = False  # --half-sync-off
        self.million_sync = False  # --million-sync
        self.rpc_half = False  # --rpc-half
        os.makedirs(os.path.join(out, "raw"), exist_ok=True)

    def binary(self, name):
        path = os.path.join(self.build, "bench", name)
        return path if os.path.exists(path) else None

    def wanted(self, name):
        return not self.only or name in self.only

    def run(self, name, argv, timeout):
        """Runs argv; returns its stdout, or None if it failed."""
        if self.replay:
            return None
        print(f"compare: {name}: {' '.join(argv)}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  timeout=timeout)
            code = done.returncode
            out, err = done.stdout, done.stderr
        except subprocess.TimeoutExpired as e:
            code, out, err = "timeout", "", str(e)
        seconds = time.monotonic() - started
        self.log.append({"name": name, "command": " ".join(argv),
                         "seconds": round(seconds, 1), "exit": code})
        with open(os.path.join(self.out, "raw", name + ".stderr"), "w") as f:
            f.write(err)
        if code != 0:
            # Kept: custos_load reports its errors (first_error) in it.
            if out:
                with open(os.path.join(self.out, "raw", name + ".stdout"),
                          "w") as f:
                    f.write(out)
            print(f"compare: {name} failed ({code}); see "
                  f"{self.out}/raw/{name}.stderr", file=sys.stderr)
            return None
        return out

    def gbench(self, name, binary, bench_filter, min_time=None, reps=None,
               extra=(), timeout=3600, interleave=True):
        """A Google Benchmark binary: {run_name: [one dict per repetition]}.
        interleave=False keeps the registered order (a store that only
        grows, as breach_bench's: shuffled, every size would be measured
        at whatever the history had grown to)."""
        path = self.binary(binary)
        out_json = os.path.join(self.out, "raw", name + ".json")
        if self.replay:
            path = path or binary
        if path is None or not self.wanted(name):
            return {}
        argv = [path, f"--benchmark_filter={bench_filter}",
                f"--benchmark_out={out_json}", "--benchmark_out_format=json",
                f"--benchmark_repetitions={reps or self.reps}",
                "--benchmark_enable_random_interleaving="
                f"{'true' if interleave else 'false'}"]
        if min_time is not None:
            argv.append(f"--benchmark_min_time={min_time}")
        argv += list(extra)
        if self.replay:
            if not os.path.exists(out_json):
                return {}
        elif self.run(name, argv, timeout) is None or \
                not os.path.exists(out_json):
            return {}
        with open(out_json) as f:
            data = json.load(f)
        runs = Runs()
        # Repetition i of two series ran close in time only when the run
        # interleaved them; otherwise ratios are of the medians.
        runs.group = name if interleave else None
        for b in data.get("benchmarks", []):
            if b.get("run_type") != "iteration" or b.get("error_occurred"):
                continue
            runs.setdefault(b["run_name"], []).append(b)
        return runs

    def loads(self, configs, timeout=600, rounds=None):
        """custos_load runs {name: args}, repeated with the repetitions
        outermost (run i of each config close in time to run i of the
        others), `rounds` times if given: {name: [one JSON object per
        run]}."""
        path = self.binary("custos_load")
        results = {name: [] for name in configs}
        if path is None and not self.replay:
            return results
        # At most 3 rounds (2 with --quick): nineteen configurations
        # (fifteen with --quick) of a few seconds each.
        if rounds is None:
            rounds = min(self.reps, 2 if self.quick else 3)
        for i in range(rounds):
            for name, args in configs.items():
                if not self.wanted(name):
                    continue
                if self.replay:
                    raw = os.path.join(self.out, "raw", f"{name}-{i}.json")
                    if os.path.exists(raw):
                        with open(raw) as f:
                            results[name].append(json.load(f))
                    continue
                out = self.run(f"{name}-{i}", [path] + args, timeout)
                if out is None:
                    continue
                with open(os.path.join(self.out, "raw", f"{name}-{i}.json"),
                          "w") as f:
                    f.write(out)
                results[name].append(json.loads(out))
        return results

    def plain(self, name, binary, args, timeout=3600):
        """A binary that writes its own JSON file (--json=PATH)."""
        path = self.binary(binary)
        out_json = os.path.join(self.out, "raw", name + ".json")
        if self.replay:
            if not os.path.exists(out_json):
                return None
        elif path is None or not self.wanted(name):
            return None
        elif self.run(name, [path] + args + [f"--json={out_json}"],
                      timeout) is None:
            return None
        with open(out_json) as f:
            return json.load(f)


# ---- Figures ---------------------------------------------------------------

def per_op_us(b):
    """Microseconds per operation (wall) of one Google Benchmark repetition."""
    if "items_per_second" in b and b["items_per_second"] > 0:
        return 1e6 / b["items_per_second"]
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
    return b["real_time"] * scale


def summary(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values),
            "max": max(values), "n": len(values)}


def ratio_summary(a, b):
    """theirs (b) / ours (a): see Figures.ratio."""
    if (a.get("group") is not None and a.get("group") == b.get("group")
            and len(a["values"]) == len(b["values"])):
        pairs = [tv / ov for ov, tv in zip(a["values"], b["values"])
                 if ov > 0]
        if pairs:
            return {**summary(pairs), "paired": True}
    if a["median"] <= 0 or a["min"] <= 0:
        return {"median": None, "min": None, "max": None, "n": 0,
                "paired": False}
    return {"median": b["median"] / a["median"], "min": b["min"] / a["max"],
            "max": b["max"] / a["min"], "n": min(a["n"], b["n"]),
            "paired": False}


def add_memory_parts(fig, name, results, during):
    """custosd's sampled peaks of RssAnon and RssFile (custos_load's
    server.peak_anon_kib, peak_file_kib) as figures NAME.peak_*_kib."""
    for part, what in (("anon", "allocated (RssAnon)"),
                       ("file", "mapped files (RssFile)")):
        fig.add(f"{name}.peak_{part}_kib",
                [x["server"][f"peak_{part}_kib"] for x in results
                 if f"peak_{part}_kib" in x.get("server", {})],
                "KiB", "custos_load",
                f"{name}: custosd peak RSS of {what}{during}, sampled")


class Figures:
    """Named series of per-repetition values, and ratios between them."""

    def __init__(self):
        self.series = {}   # name -> {"unit", "values", "source", "label"}
        self.ratios = []   # dicts

    def add(self, name, values, unit, source, label, group=None):
        """group: the run whose repetitions were interleaved with others of
        the same group (one Google Benchmark binary's run, or the
        custos_load runs), so that repetition i of two series of one group
        ran close in time; None when the series stands alone."""
        if values:
            self.series[name] = {"unit": unit, "values": values,
                                 "source": source, "label": label,
                                 "group": group, **summary(values)}

    def gb(self, name, runs, run_name, label, unit="us/op", per_item=True):
        """per_item: the time per item the benchmark counted (its
        items_per_second); otherwise the wall time of one iteration."""
        reps = runs.get(run_name, [])
        values = [per_op_us(b) if per_item else per_op_us(
            {k: v for k, v in b.items() if k != "items_per_second"})
            for b in reps]
        self.add(name, values, unit, run_name, label,
                 group=getattr(runs, "group", None))

    def each(self, name, runs, run_name, prefix, scale, unit, label):
        """One value per timed operation, from the counters PREFIX0,
        PREFIX1, ... of each repetition of run_name (a benchmark that
        times operations of a store it consumes or grows, run once with
        several iterations), times `scale`."""
        values = []
        for b in runs.get(run_name, []):
            i = 0
            while f"{prefix}{i}" in b:
                values.append(b[f"{prefix}{i}"] * scale)
                i += 1
        self.add(name, values, unit, run_name, label)

    def limit(self, name, series, at_most):
        """An absolute target: the median of `series` at most `at_most`."""
        a = self.series.get(series)
        if not a:
            self.ratios.append({"name": name, "ours": series, "missing": True,
                                "target": at_most})
            return
        self.ratios.append({"name": name, "ours": series, "limit": at_most,
                            "target": None, "met": a["median"] <= at_most,
                            "median": a["median"], "min": a["min"],
                            "max": a["max"], "n": a["n"]})

    def ratio(self, name, ours, theirs, target=None, note="", at_most=None):
        """theirs/ours for costs (us/op): >= 1 means ours is faster.

        Pair by pair (repetition i of one with repetition i of the other)
        only when both series come from one interleaved run (the same
        group) with as many repetitions each; otherwise (different binaries
        run minutes apart, or different counts) the ratio of the medians,
        its range from the extremes (their min / our max to their max / our
        min). With `at_most`, the target is a range: target <= median <=
        at_most (flat growth)."""
        a = self.series.get(ours)
        b = self.series.get(theirs)
        if not a or not b:
            self.ratios.append({"name": name, "ours": ours, "theirs": theirs,
                                "missing": True, "target": target,
                                "note": note})
            return
        s = ratio_summary(a, b)
        met = (None if target is None or s["median"] is None
               else s["median"] >= target)
        if met and at_most is not None:
            met = s["median"] <= at_most
        self.ratios.append({"name": name, "ours": ours, "theirs": theirs,
                            "target": target, "at_most": at_most, "met": met,
                            "note": note, **s})


# ---- The workloads -----------------------------------------------------------

def run_all(r, fig, growth):
    q = r.quick
    mt = "0.1" if q else "0.5"

    # 1, 2 and 7 (writers): the engine against raw LevelDB writing the same
    # bytes (concurrency_bench measures what each operation writes).
    # 0.5 s a benchmark: with 0.3 s (the thirteenth run) raw LevelDB's
    # get + put ran on a smaller database and took 7.1-7.9 µs instead of
    # 11-13, the engine's read unchanged (read target 0.33 instead of
    # 0.49): the baselines' cost depends on how long they run.
    runs = r.gbench(
        "concurrency", "concurrency_bench",
        "^BM_(CreateExistingSubject|RawPutLikeCreateExistingSubject|"
        "DisclosingRead|RawGetPutLikeDisclosingRead|"
        "RawGetBatchLikeDisclosingRead|SyncCreateExistingSubject|"
        "SyncDisclosingRead|RawSyncPut|RawSyncGetPutLikeDisclosingRead|"
        "ListPage|SyncListPage|RawListPage|RawSyncListPage|CloseRecord|"
        "RawPutLikeCloseRecord)/", min_time=mt)
    fig.gb("read.sync.raw.t1", runs,
           "BM_RawSyncGetPutLikeDisclosingRead/real_time/threads:1",
           "raw get + synced put of the event's bytes")
    for sync, prefix in ((0, ""), (1, "Sync")):
        fig.gb(f"list.page.custos.sync{sync}", runs,
               f"BM_{prefix}ListPage/real_time",
               f"list a page of 100 with its events, sync {sync}, per record",
               unit="us/record")
        fig.gb(f"list.page.raw.sync{sync}", runs,
               f"BM_Raw{prefix}ListPage/real_time",
               f"raw LevelDB: the page's reads and its events' bytes, sync "
               f"{sync}, per record", unit="us/record")
    fig.gb("create.nosync.custos", runs, "BM_CreateExistingSubject/real_time",
           "create, in-process, sync off")
    fig.gb("create.nosync.raw", runs,
           "BM_RawPutLikeCreateExistingSubject/real_time",
           "raw LevelDB put of the same bytes, sync off")
    fig.gb("read.nosync.custos", runs, "BM_DisclosingRead/real_time",
           "read by id with its access event, sync off")
    fig.gb("read.nosync.raw", runs, "BM_RawGetPutLikeDisclosingRead/real_time",
           "raw get + put of the event's bytes, sync off")
    fig.gb("read.nosync.raw_batch", runs,
           "BM_RawGetBatchLikeDisclosingRead/real_time",
           "raw get + one batch of the read's entries (as many, same sizes), "
           "sync off")
    fig.gb("close.nosync.custos", runs,
           "BM_CloseRecord/iterations:10000/real_time",
           "close an active record (re-sealed under its deadline bucket), "
           "sync off")
    fig.gb("close.nosync.raw", runs, "BM_RawPutLikeCloseRecord/real_time",
           "raw LevelDB put of the bytes a close writes, sync off")
    for t in (1, 4, 16):
        fig.gb(f"create.sync.custos.t{t}", runs,
               f"BM_SyncCreateExistingSubject/real_time/threads:{t}",
               f"create, in-process, sync on, {t} threads", unit="us/op (all threads)")
        fig.gb(f"read.sync.custos.t{t}", runs,
               f"BM_SyncDisclosingRead/real_time/threads:{t}",
               f"read with event, sync on, {t} threads", unit="us/op (all threads)")
        fig.gb(f"put.sync.raw.t{t}", runs, f"BM_RawSyncPut/real_time/threads:{t}",
               f"raw LevelDB synced put, {t} threads", unit="us/op (all threads)")

    # 1 at the size with sync on (full run only): a million synced
    # creates into one store and a million synced raw puts of a create's
    # bytes into one database, from 16 threads (62,500 each), once (about
    # three and a half minutes here); with --million-sync also from one
    # thread (about nine minutes more, which the 30 minutes cannot hold).
    if not q:
        runs = r.gbench("create_million_sync", "concurrency_bench",
                        "^BM_(SyncCreate|RawSyncPut)Million/iterations:" +
                        ("(1000000|62500)/" if r.million_sync else "62500/"),
                        reps=1)
        for t, per in ((1, "1000000"), (16, "62500")):
            fig.gb(f"create.million.sync.custos.t{t}", runs,
                   f"BM_SyncCreateMillion/iterations:{per}/repeats:1/"
                   f"real_time/threads:{t}",
                   f"create, 1,000,000 into one store, sync on, {t} "
                   f"thread{'s' if t > 1 else ''}", unit="us/op (all threads)")
            fig.gb(f"create.million.sync.raw.t{t}", runs,
                   f"BM_RawSyncPutMillion/iterations:{per}/repeats:1/"
                   f"real_time/threads:{t}",
                   f"raw LevelDB synced put of a create's bytes, 1,000,000 "
                   f"into one database, {t} thread{'s' if t > 1 else ''}",
                   unit="us/op (all threads)")
    # 1 at the size (full run only): a million raw puts of a
    # create's bytes into one database, sync off, once; the engine's million
    # creates are sweep_bench's builds of its stores of a million (below).
    if not q:
        runs = r.gbench("create_million", "concurrency_bench",
                        "^BM_RawPutLikeCreateMillion/", reps=1)
        for key in runs:
            fig.gb("create.million.raw", runs, key,
                   "raw LevelDB put of a create's bytes, 1,000,000 into one "
                   "database, sync off")
            # 4 on raw LevelDB at the size, in that database once
            # settled: half of it deleted, spread, in batches of 1,000 (a
            # quarter of the million without sync, a quarter synced), then
            # compacted whole; bytes gone per durability: its deletes'
            # cost per record and the compaction's share.
            for counter, name, what in (
                    ("delete_us_sync0", "sweep.raw.spread.delete.s0.nhalf",
                     "delete, batches of 1,000, sync off"),
                    ("delete_us_sync1", "sweep.raw.spread.delete.s1.nhalf",
                     "delete, batches of 1,000, each synced"),
                    ("gone_us_sync0", "sweep.raw.spread.gone.s0.nhalf",
                     "the deletes without sync and a compaction of the "
                     "whole database (bytes gone)"),
                    ("gone_us_sync1", "sweep.raw.spread.gone.s1.nhalf",
                     "the synced deletes and a compaction of the whole "
                     "database (bytes gone)")):
                fig.add(name, [b[counter] for b in runs[key]
                               if counter in b], "us/due record", key,
                        "raw LevelDB: 500,000 of its 1,000,000 values, "
                        f"spread: {what}")

    # 3 and 6: engine_bench (its stores of 10,000 records are the sizes of
    # pg_workloads_bench's, whose create, read and list they pair with).
    # Its shreds are not run: shred_bench's in a keystore of 1,000
    # subjects (below) are their pairs (docs/decisions.md, "The full run's
    # minutes spent waiting").
    runs = r.gbench(
        "engine", "engine_bench",
        "^BM_(ListRecords/256|ProduceSubjectReport|"
        "CreateRecordExistingSubject/256|"
        "CreateRecordExistingSubjectSyncWrites/256|GetRecord/256|"
        "GetRecordSyncWrites|RawLevelDbReportReads)",
        min_time=mt, reps=min(r.reps, 2 if q else 3))
    fig.gb("create.engine.sync0", runs,
           "BM_CreateRecordExistingSubject/256/real_time",
           "create (engine_bench), sync off")
    fig.gb("create.engine.sync1", runs,
           "BM_CreateRecordExistingSubjectSyncWrites/256/real_time",
           "create (engine_bench), sync on")
    fig.gb("read.engine.sync0", runs, "BM_GetRecord/256/real_time",
           "read by id with its event (engine_bench), sync off")
    fig.gb("read.engine.sync1", runs, "BM_GetRecordSyncWrites/real_time",
           "read by id with its event (engine_bench), sync on")
    fig.gb("list.custos", runs, "BM_ListRecords/256/real_time",
           "list in pages of 100 (10,000 records), per record",
           unit="us/record")
    for sync in (0, 1):
        fig.gb(f"report.raw.sync{sync}", runs,
               f"BM_RawLevelDbReportReads/sync:{sync}/real_time",
               f"raw LevelDB: the report's reads and one put, sync {sync}",
               unit="us/report", per_item=False)
    for key in runs:
        if m := re.match(r"BM_ProduceSubjectReport/sync:(\d)", key):
            fig.gb(f"report.custos.sync{m[1]}", runs, key,
                   "subject report, 1,000 records, 10,000 events, sync "
                   f"{'on' if m[1] == '1' else 'off'}",
                   unit="us/report", per_item=False)

    # 3, growth: a page of 100 of one principal's records (one in ten of
    # the store's) against the store's size. One store grown in place, so
    # in the registered order (shuffled, the sixth full run measured two of
    # the three repetitions at 10,000 and 100,000 in the store of a million).
    sizes = "10000|100000" if q else "10000|100000|1000000"
    runs = r.gbench("list", "list_bench",
                    f"^BM_ListGrowth/records:({sizes})/", min_time=mt,
                    reps=min(r.reps, 3), interleave=False)
    for key in runs:
        m = re.match(r"BM_ListGrowth/records:(\d+)/", key)
        if m:
            name = f"list.growth.n{m[1]}"
            fig.gb(name, runs, key, f"list in pages of 100, store of "
                   f"{int(m[1]):,} records, per record", unit="us/record")
            growth.setdefault("list", {})[int(m[1])] = \
                fig.series[name]["median"]

    # 5: shred latency against the keystore's size (--quick: the two sizes
    # it pairs with PostgreSQL's, for its 5 minutes).
    sizes = "1000|10000" if q else "1000|10000|100000|1000000"
    runs = r.gbench("shred", "shred_bench",
                    f"^BM_ShredLatencyKeystoreSize/({sizes})/", reps=1)
    for key, reps in runs.items():
        m = re.match(r"BM_ShredLatencyKeystoreSize/(\d+)/", key)
        if m:
            # One value per shred: five subjects shredded as the engine
            # opens (counters shred_ms_I: LevelDB opens a keystore table
            # at its first lookup), then five whose keystore tables were
            # read before (warm_ms_I), as in a server that has been up.
            fig.each(f"shred.latency.custos.k{m.group(1)}", runs, key,
                     "shred_ms_", 1000, "us/shred", "shred of one subject, "
                     f"keystore of {m.group(1)} subjects, just opened")
            fig.each(f"shred.latency.warm.k{m.group(1)}", runs, key,
                     "warm_ms_", 1000, "us/shred", "shred of one subject, "
                     f"keystore of {m.group(1)} subjects, its table open")
            growth.setdefault("shred", {})[int(m.group(1))] = \
                fig.series[f"shred.latency.custos.k{m.group(1)}"]["median"]
            # After those, each warm and timed alone: subjects of 10
            # records; with the engine reopened sync off, of 10,000 and of
            # 10; and the raw LevelDB peer's erasures of as many records
            # (a prefix scan and one batch of deletes), synced and not.
            k = m.group(1)
            for prefix, name, what in (
                    ("small_ms_", f"shred.small.warm.k{k}",
                     "shred of one subject of 10 records, sync on"),
                    ("off_ms_", f"shred.off.warm.k{k}",
                     "shred of one subject of 10,000 records, sync off"),
                    ("off_small_ms_", f"shred.off.small.warm.k{k}",
                     "shred of one subject of 10 records, sync off"),
                    ("raw_ms_", f"raw.shred.r10000.k{k}.sync1",
                     "raw LevelDB: delete a subject's 10,000 records, synced"),
                    ("raw_off_ms_", f"raw.shred.r10000.k{k}.sync0",
                     "raw LevelDB: delete a subject's 10,000 records, sync "
                     "off"),
                    ("raw_small_ms_", f"raw.shred.r10.k{k}.sync1",
                     "raw LevelDB: delete a subject's 10 records, synced"),
                    ("raw_off_small_ms_", f"raw.shred.r10.k{k}.sync0",
                     "raw LevelDB: delete a subject's 10 records, sync off")):
                fig.each(name, runs, key, prefix, 1000, "us/shred",
                         f"{what}, {int(k):,} subjects, warm")

    # 4: sweeps, Custos against PostgreSQL, at each store size. Each
    # figure's values are the benchmark's sweeps, one each (counters
    # sweep_ms_I, undecipherable_ms_I); the batched one's is their mean.
    sizes = [10000, 100000] if q else [10000, 100000, 1000000]
    # Bytes gone (compaction during the sweep, or batched over three) only
    # synced: the figures their ratios against PostgreSQL read, named
    # without the durability (sync off wrote under the same names); and
    # each configuration at a million resettles a store of 2 GiB (about
    # 11 s), where the full run must fit in 30 minutes.
    # The compaction batched over three sweeps (issue 11's hygiene, no
    # target of issue 16's) at 10,000 and 100,000 only: at a million each
    # configuration resettles a store of 2 GiB, and the run has 30 minutes.
    #
    # The full run sweeps the 500,000 due of 1,000,000 (below) in the same
    # run, after the 1,000-due sweeps, in the registered order (not
    # shuffled): at a million, sweep_bench's 1,000-due benchmarks of both
    # layouts and the half sweep share one store (its SharedStore), built
    # once, one create a call (the million creates' figure), where three
    # stores of a million were built before (about three minutes).
    # --half-sync-off also sweeps the half with sync off, with compaction
    # on during the sweep (bytes gone when its compaction of the erased
    # bucket's range is done, checked by VerifyErasure), on a copy of the
    # same store (docs/decisions.md).
    syncs = "[01]" if r.half_sync_off else "1"
    half_filter = ("BM_SweepHalfDue/records:1000000/spread:1/compact:1/"
                   f"sync:{syncs}")
    runs = r.gbench(
        "sweep", "sweep_bench",
        "^(BM_Sweep1000Due/(records:(" + "|".join(map(str, sizes)) +
        ")/spread:[01]/(compact:0/sync:[01]|compact:1/sync:1)|records:"
        "(10000|100000)/spread:[01]/compact:2/sync:1)" +
        ("" if q else "|" + half_filter) + ")", reps=1, interleave=False)
    # The build of the store of a million, per create (one a call; the
    # smaller stores are built 100 a call).
    million_creates = []
    for key in runs:
        m = re.match(r"BM_Sweep1000Due/records:(\d+)/spread:(\d)/compact:(\d)"
                     r"/sync:(\d)", key)
        if not m:
            continue
        n, spread, compact, sync = (int(x) for x in m.groups())
        layout = "spread" if spread else "clustered"
        on = "sync on" if sync else "sync off"
        if compact == 2:
            # Compaction batched over three sweeps (erasure_compaction_delay):
            # the mean sweep, compaction included, per due record.
            fig.gb(f"sweep.custos.{layout}.gone_batched.n{n}", runs, key,
                   f"sweep 1,000 due of {n:,}, {layout}, bytes gone, "
                   f"compaction batched over 3 sweeps, {on}",
                   unit="us/due record")
            continue
        if compact:
            # The sweep and the compaction that takes the bytes off the disk.
            name = f"sweep.custos.{layout}.gone.n{n}"
            fig.each(name, runs, key, "sweep_ms_", 1000 / 1000,
                     "us/due record", f"sweep 1,000 due of {n:,}, {layout}, "
                     f"bytes gone, {on}")
            if name in fig.series:
                growth.setdefault(f"sweep_{layout}_gone", {})[n] = \
                    fig.series[name]["median"]
            continue
        # Compaction off: the whole sweep (erasure by key, then the rewrite
        # of each record to its stub), and the erasure by key alone (the
        # undecipherable_ms counters: until the bucket key is destroyed).
        fig.each(f"sweep.custos.{layout}.sweep.s{sync}.n{n}", runs, key,
                 "sweep_ms_", 1000 / 1000, "us/due record",
                 f"sweep 1,000 due of {n:,}, {layout}, whole sweep without "
                 f"compaction, {on}")
        name = f"sweep.custos.{layout}.key.s{sync}.n{n}"
        fig.each(name, runs, key, "undecipherable_ms_", 1000 / 1000,
                 "us/due record", f"sweep 1,000 due of {n:,}, {layout}, "
                 f"undecipherable (the bucket key destroyed), {on}")
        if sync and name in fig.series:
            growth.setdefault(f"sweep_{layout}_key", {})[n] = \
                fig.series[name]["median"]

    # The issue's own case (full run only): 500,000 due of 1,000,000,
    # spread (issue 11's case), sync on (the shipped default), and with
    # --half-sync-off also sync off: one run of each, on copies of the
    # store of a million (sweep_bench's HalfStoreFor), in the sweep run
    # above; in a run of its own (sweep_half) only when the sweep run was
    # not wanted (--only sweep_half), or in a replay of a run that made it
    # so.
    if not q:
        half_runs = {k: v for k, v in runs.items()
                     if k.startswith("BM_SweepHalfDue/")}
        if not half_runs and (r.replay or not r.wanted("sweep")):
            half_runs = r.gbench("sweep_half", "sweep_bench",
                                 "^" + half_filter, reps=1)
        runs = half_runs
        for key, reps in runs.items():
            m = re.match(r"BM_SweepHalfDue/records:(\d+)/spread:(\d)/"
                         r"compact:\d/sync:(\d)", key)
            if not m:
                continue
            layout = "spread" if m[2] == "1" else "clustered"
            sync = m[3]
            if sync == "1":  # The store is the same: one build.
                million_creates += [b["create_us_per_record"] for b in reps
                                    if "create_us_per_record" in b]
            # Sync on keeps the names of the runs before sync off was added.
            # The whole sweep: until the bytes are gone, then the rewrite
            # of each erased record to its stub (hygiene after it).
            for counter, what, label in (
                    ("undecipherable_us_per_record", f"key.s{sync}",
                     "undecipherable"),
                    ("gone_us_per_record",
                     "gone" if sync == "1" else "gone.s0", "bytes gone"),
                    ("sweep_us_per_record", f"whole.s{sync}",
                     "whole sweep (the rewrite to stubs included)")):
                fig.add(f"sweep.custos.{layout}.{what}.nhalf",
                        [b[counter] for b in reps if counter in b],
                        "us/due record", key,
                        f"sweep 500,000 due of 1,000,000, {layout}, {label}, "
                        f"sync {'on' if sync == '1' else 'off'}")
    if million_creates:
        fig.add("create.million.custos", million_creates, "us/op",
                "sweep_bench (the build of its store of a million)",
                "create, 1,000,000 into one store, one a call, sync off "
                "(the build of sweep_bench's shared store of a million)")
    half = [] if q else ["--half=1000000", "--half_layouts=spread"]
    for fsync in ("on", "off"):
        pg = r.plain(f"sweep_pg_fsync_{fsync}", "sweep_pg_bench",
                     ["--records=" + ",".join(map(str, sizes)),
                      f"--fsync={fsync}"] + half)
        for row in (pg or {}).get("rows", []):
            n, layout = row["records"], row["layout"]
            if row.get("workload") == "half":
                n = "half"
            due = row["due"]
            fig.add(f"sweep.pg.{fsync}.{layout}.delete.n{n}",
                    [m * 1000 / due for m in row["delete_ms"]],
                    "us/due record",
                    "sweep_pg_bench", f"DELETE {row['due']:,} of "
                    f"{row['records']:,}, {layout}, fsync {fsync}")
            fig.add(f"sweep.pg.{fsync}.{layout}.gone.n{n}",
                    [(d + v) * 1000 / due for d, v in
                     zip(row["delete_before_vacuum_full_ms"],
                         row["vacuum_full_ms"])], "us/due record",
                    "sweep_pg_bench",
                    f"DELETE + VACUUM FULL, {row['due']:,} of "
                    f"{row['records']:,}, {layout}, fsync {fsync}")

    # 7: the server over RPC.
    # Measured 1.25 s after a warm-up of 0.5 s (a server of its own each):
    # 66 runs in the full run, which must fit in 30 minutes; --quick's 44
    # runs 0.75 s after 0.25 s (its 5 minutes).
    secs, warm = ("0.75", "0.25") if q else ("1.25", "0.5")
    common = ["--start-server", "--duration", secs, "--warmup", warm]
    one = ["-c", "1", "-d", "16"]  # One connection, 16 calls in flight.
    load_runs = {
        "echo": common + ["--echo"] + one,
        "rpc_create_unix_nosync": common + ["--no-sync", "--mix", "create=1"]
        + one,
        "rpc_create_tcp_nosync": common + ["--tcp", "--no-sync", "--mix",
                                           "create=1"] + one,
        "rpc_create_tcp_sync": common + ["--tcp", "--mix", "create=1"] + one,
        # 2 and 3 over RPC: each connection reads (or lists) the records it
        # created first, warm, each read writing its access event.
        "rpc_get_unix_nosync": common + ["--no-sync", "--mix", "get=1"] + one,
        "rpc_get_unix_sync": common + ["--mix", "get=1"] + one,
        "rpc_get_tcp_nosync": common + ["--tcp", "--no-sync", "--mix",
                                        "get=1"] + one,
        "rpc_list_unix_nosync": common + ["--no-sync", "--mix", "list=1"]
        + one,
        "rpc_list_unix_sync": common + ["--mix", "list=1"] + one,
        "rpc_list_tcp_nosync": common + ["--tcp", "--no-sync", "--mix",
                                         "list=1"] + one,
        "rpc_create_unix_sync_c1": common + ["--mix", "create=1", "-c", "1",
                                             "-d", "1"],
        "rpc_create_unix_sync_c16": common + ["--mix", "create=1", "-c", "16",
                                              "-d", "1"],
        "rpc_create_unix_sync_c4": common + ["--mix", "create=1", "-c", "4",
                                             "-d", "1"],
        "rpc_mixed_c32": common + ["-c", "32", "-d", "4"],
        "rpc_mixed_c32_nosync": common + ["--no-sync", "-c", "32", "-d", "4"],
        # Reads, lists and the 32 mixed clients over loopback TCP too, both
        # durabilities (creates over TCP: above).
        "rpc_get_tcp_sync": common + ["--tcp", "--mix", "get=1"] + one,
        "rpc_list_tcp_sync": common + ["--tcp", "--mix", "list=1"] + one,
        "rpc_mixed_c32_tcp": common + ["--tcp", "-c", "32", "-d", "4"],
        "rpc_mixed_c32_tcp_nosync": common + ["--tcp", "--no-sync", "-c",
                                              "32", "-d", "4"],
    }
    if q:  # --quick has 5 minutes: both transports for creates only.
        for name in ("rpc_get_tcp_sync", "rpc_list_tcp_sync",
                     "rpc_mixed_c32_tcp", "rpc_mixed_c32_tcp_nosync"):
            del load_runs[name]
    for name, results in r.loads(load_runs).items():
        args = load_runs[name]
        fig.add(f"{name}.us_per_op", [1e6 / x["ops_per_s"] for x in results
                                       if x.get("ops_per_s")],
                "us/op", "custos_load " + " ".join(args), name,
                group="custos_load")
        for p in ("p50", "p99", "p999"):
            fig.add(f"{name}.{p}", [x["latency_us"][p] for x in results],
                    "us", "custos_load", f"{name} latency {p}")
        fig.add(f"{name}.peak_rss_kib",
                [x["server"]["peak_rss_kib"] for x in results
                 if "server" in x and "peak_rss_kib" in x["server"]],
                "KiB", "custos_load", f"{name}: custosd peak RSS")
        add_memory_parts(fig, name, results, "")

    # 1 over RPC at the size (full run only), once: a million
    # creates over the unix socket, one a call, pipelined (16 in flight on
    # one connection), sync off (as the in-process million), for custosd's
    # peak resident memory during workload 1 (the runs above create for
    # 2 s) and the throughput of that long a run. With --rpc-half, the
    # million creates of the RPC sweep of 500,000 due (rpc_sweep_half_sync,
    # below) are these figures, made the same way, and this run is left
    # out.
    if not q and not r.rpc_half:
        million = {"rpc_create_million": ["--start-server", "--warmup", "0",
                                          "--count", "1000000", "--no-sync",
                                          "--mix", "create=1"] + one}
        for name, results in r.loads(million, timeout=900, rounds=1).items():
            fig.add(f"{name}.us_per_op", [1e6 / x["ops_per_s"]
                                          for x in results
                                          if x.get("ops_per_s")], "us/op",
                    "custos_load " + " ".join(million[name]),
                    "RPC creates, 1,000,000 pipelined (16 in flight), "
                    "unix socket, sync off")
            fig.add(f"{name}.peak_rss_kib",
                    [x["server"]["peak_rss_kib"] for x in results
                     if "peak_rss_kib" in x.get("server", {})], "KiB",
                    "custos_load", f"{name}: custosd peak RSS over the "
                    "million creates")
            add_memory_parts(fig, name, results, " over the million creates")

    # 4, 5 and 6 over RPC: the admin's or auditor's call alone (one in
    # flight), timed by custos_load --scenario against a custosd it starts,
    # on data it made first over RPC; one run each, of K calls, each on
    # fresh data of the same shape (a new subject; the sweep's next due
    # group: custosd-testclock moves the server's clock past its deadline).
    calls = "2" if q else "3"
    history = "100000" if q else "1000000"
    scenario = ["--start-server", "--repeat", calls, "--scenario"]
    admin_runs = {
        "rpc_report_sync": scenario + ["report"],
        "rpc_report_nosync": scenario + ["report", "--no-sync"],
        "rpc_shred10_sync": scenario + ["shred", "--records", "10"],
        "rpc_shred10_nosync": scenario + ["shred", "--records", "10",
                                          "--no-sync"],
        "rpc_shred10000_sync": scenario + ["shred", "--records", "10000"],
        "rpc_shred10000_nosync": scenario + ["shred", "--records", "10000",
                                             "--no-sync"],
        # custosd compacts erased bytes on its timer (300 s after the
        # erasure by default): with 0, each sweep compacts what it erased
        # before it answers, as the in-process figure it is paired with.
        "rpc_sweep_sync": scenario + ["sweep", "--server-arg="
                                      "--erasure-compaction-delay=0"],
        "rpc_sweep_nosync": scenario + ["sweep", "--no-sync", "--server-arg="
                                        "--erasure-compaction-delay=0"],
        # 8 over RPC: the breach scope of 1,000 disclosures, then the
        # statistics, in a history made once over RPC (custosd-testclock:
        # the window is exact), of 1,000,000 events (100,000 with --quick).
        # The history of a million events takes 36-45 s to make over RPC
        # and the full run has to fit in 30 minutes: it is made once, by a
        # synced custosd. --tcp-too: then over loopback TCP to the same
        # custosd, in the same history (the scope and statistics only);
        # --then-no-sync: then the same custosd restarted on the same data
        # with --no-sync, over the unix socket (rpc_breach_nosync).
        "rpc_breach_sync": scenario + ["breach", "--events", history,
                                       "--tcp-too", "--then-no-sync"],
    }
    # 4 over RPC at the size (full run, --rpc-half only: about a
    # minute and a half more here than rpc_create_million, which it
    # replaces): a million records made over RPC, one create a call, by a
    # custosd with --no-sync (timed: workload 1 over RPC at its size),
    # every other one closed, then custosd restarted on the same data,
    # synced, the 500,000 due swept in one call, compacted before it
    # answers, as the in-process half.
    if not q and r.rpc_half:
        admin_runs["rpc_sweep_half_sync"] = [
            "--start-server", "--repeat", "1", "--scenario", "sweep",
            "--half", "--records", "1000000",
            "--server-arg=--erasure-compaction-delay=0"]
    if q:  # The dearest: its completions take over a second each.
        del admin_runs["rpc_shred10000_nosync"]
        admin_runs["rpc_shred10000_sync"] = [
            "--start-server", "--repeat", "1", "--scenario", "shred",
            "--records", "10000"]
    # The same calls over loopback TCP (--tcp: custosd listens on a free
    # port, the client connects there). Not the breach: its history of a
    # million events takes 35-50 s to make, and the full run has to fit in
    # 30 minutes; rpc_breach_sync times its calls over TCP too, to the same
    # custosd in the same history (--tcp-too).
    for name in [n for n in admin_runs
                 if "breach" not in n and "half" not in n]:
        what, durability = name.rsplit("_", 1)
        admin_runs[f"{what}_tcp_{durability}"] = ["--tcp"] + admin_runs[name]
    load_tool = r.binary("custos_load")
    for name, args in admin_runs.items():
        raw = os.path.join(r.out, "raw", name + ".json")
        if not r.wanted(name) or (load_tool is None and not r.replay):
            continue
        if r.replay:
            if not os.path.exists(raw):
                continue
            with open(raw) as f:
                x = json.load(f)
        else:
            # The sweep over RPC makes a million records first.
            out = r.run(name, [load_tool] + args,
                        1800 if "half" in name else 600)
            if out is None:
                continue
            with open(raw, "w") as f:
                f.write(out)
            x = json.loads(out)
        durability = ("sync on" if x.get("sync") else "sync off") + (
            ", loopback TCP" if x["address"].startswith("tcp")
            else ", unix socket")
        source = "custos_load " + " ".join(args)
        if x["scenario"] == "report":
            fig.add(f"{name}.us", x["op_us"], "us/report", source,
                    f"RPC subject report, {x['records']:,} records, "
                    f"{x['events']:,} events, {durability}")
        elif x["scenario"] == "shred":
            fig.add(f"{name}.us", x["op_us"], "us/shred", source,
                    f"RPC shred of a subject of {x['records']:,} records, "
                    f"{durability}")
            fig.add(f"{name}.complete_us", x["complete_us"], "us/completion",
                    source, f"RPC completion of that shred (completeShreds "
                    f"until none pending: {x['records']:,} records "
                    f"rewritten), {durability}")
        elif x["scenario"] == "breach":
            fig.add(f"{name}.scope_us", x["scope_us"], "us/scope", source,
                    f"RPC breach scope, {x['disclosures']:,} disclosures, "
                    f"history of {x['events']:,} events, {durability}")
            fig.add(f"{name}.stats_us", x["stats_us"], "us/query", source,
                    f"RPC statistics query after a fold, the breach store "
                    f"({x['records']:,} records, history of "
                    f"{x['events']:,} events), {durability}")
            if "tcp_scope_us" in x:
                tcp = durability.replace("unix socket", "loopback TCP")
                what, on = name.rsplit("_", 1)
                fig.add(f"{what}_tcp_{on}.scope_us", x["tcp_scope_us"],
                        "us/scope", source,
                        f"RPC breach scope, {x['disclosures']:,} "
                        f"disclosures, history of {x['events']:,} events, "
                        f"{tcp} (the same custosd and history)")
                fig.add(f"{what}_tcp_{on}.stats_us", x["tcp_stats_us"],
                        "us/query", source,
                        f"RPC statistics query after a fold, the breach "
                        f"store, {tcp} (the same custosd and history)")
            # --then-no-sync: custosd restarted on the same history,
            # synced, then with --no-sync; the pair compared below.
            what = name.rsplit("_", 1)[0]
            for prefix, series, again in (
                    ("restarted_sync_", f"{what}_sync_restarted",
                     "sync on, unix socket (the same history; custosd "
                     "restarted on its data)"),
                    ("nosync_", f"{what}_nosync",
                     "sync off, unix socket (the same history; custosd "
                     "restarted on its data with --no-sync)")):
                if prefix + "scope_us" not in x:
                    continue
                fig.add(f"{series}.scope_us", x[prefix + "scope_us"],
                        "us/scope", source,
                        f"RPC breach scope, {x['disclosures']:,} "
                        f"disclosures, history of {x['events']:,} events, "
                        f"{again}")
                fig.add(f"{series}.stats_us", x[prefix + "stats_us"],
                        "us/query", source,
                        f"RPC statistics query after a fold, the breach "
                        f"store, {again}")
        else:
            if "create_us_per_op" in x:  # --half: its million creates.
                million = "rpc_create_million"
                fig.add(f"{million}.us_per_op", [x["create_us_per_op"]],
                        "us/op", source,
                        f"RPC creates, {x['store_records']:,} one a call, "
                        "pipelined (16 in flight, one connection), unix "
                        "socket, sync off (the RPC half sweep's store)")
                created = [{"server": x["create_server"]}]
                fig.add(f"{million}.peak_rss_kib",
                        [x["create_server"]["peak_rss_kib"]], "KiB",
                        "custos_load", f"{million}: custosd peak RSS over "
                        "the million creates")
                add_memory_parts(fig, million, created,
                                 " over the million creates")
            fig.add(f"{name}.us_per_due",
                    [t / e for t, e in zip(x["op_us"], x["erased"]) if e],
                    "us/due record", source,
                    f"RPC sweep of {x['due_per_sweep']:,} due of "
                    f"{x['store_records']:,}, spread, compacted before "
                    f"it answers (--erasure-compaction-delay=0), "
                    f"{durability}")

    # 8: breach scope against the history's size, sync off and on, and
    # its raw-LevelDB peer on the same history (BM_RawBreachScope).
    flt = "events:(25000|100000)/" if q else "events:"
    # In the registered order: the histories only grow. One value per
    # scope (counters scope_ms_I); then the statistics query in the same
    # stores.
    runs = r.gbench("breach", "breach_bench",
                    f"^BM_(Raw)?BreachScope/{flt}" if q else
                    "^BM_(Raw)?(BreachScope|StatisticsInHistory)/", reps=1,
                    interleave=False)
    for key in runs:
        m = re.match(r"BM_(Raw)?BreachScope/events:(\d+)/disclosures:(\d+)/"
                     r"sync:(\d)", key)
        if m:
            raw, events, d, sync = m.groups()
            fig.each(f"{'raw.' if raw else ''}breach.e{events}.d{d}"
                     f"{'.sync' if sync == '1' else ''}", runs, key,
                     "scope_ms_", 1000, "us/scope",
                     f"{'raw LevelDB ' if raw else ''}breach scope, {d} "
                     f"disclosures, history of {events} events, sync "
                     f"{'on' if sync == '1' else 'off'}")
        m = re.match(r"BM_(Raw)?StatisticsInHistory", key)
        if m:
            fig.each(f"{'raw.' if m[1] else ''}stats.query.history", runs,
                     key, "query_ms_", 1000, "us/query",
                     ("raw LevelDB: the records counted in one scan"
                      if m[1] else "statistics query after a fold") +
                     ", the breach store (10,000 records, history of "
                     "1,000,000 events)")

    # 8: statistics (stats_bench): a query after a fold against the
    # store's size, and the index's cost on the write path.
    # (A store of 1,000,000 takes over ten minutes to build here, more than
    # the run's budget allows: "Issue 15: statistics" in RESULTS.md has it.)
    flt = "records:10000/" if q else "records:(10000|100000)/"
    runs = r.gbench("stats", "stats_bench", "^BM_Statistics/" + flt,
                    reps=min(r.reps, 3))
    runs.update(r.gbench("stats_write", "stats_bench",
                         "^BM_(Create|Close)/index:"))
    for key in runs:
        m = re.match(r"BM_Statistics/records:(\d+)", key)
        if m:
            fig.gb(f"stats.query.n{m.group(1)}", runs, key,
                   f"statistics query after a fold, {int(m.group(1)):,} "
                   "records", unit="us/query", per_item=False)
        m = re.match(r"BM_(Create|Close)/index:(\d)", key)
        if m:
            fig.gb(f"stats.{m.group(1).lower()}.index{m.group(2)}", runs, key,
                   f"{m.group(1).lower()} with the statistics index "
                   f"{'on' if m.group(2) == '1' else 'off'}")

    # The PostgreSQL peers of workloads 1, 2, 3, 5, 6, 7 (pg_workloads_bench;
    # one transaction per create, so the synchronous creates are counted in
    # thousands, not a million: a million fsyncs would take about an hour).
    pg_args = (["--records=2000", "--read_records=10000",
                "--subjects=1000,10000", "--breach_events=100000"] if q else
               ["--records=20000", "--read_records=10000",
                "--subjects=1000,1000000"])
    # --quick: the shreds as Custos's semantics only (events struck).
    pg_filter = ("^BM_(Pg(Create|GetRecord|ListRecords|SubjectReport|"
                 "SyncCreate|BreachScope)|PgShredSubject/.*events:1|"
                 "DiskFdatasync)"
                 if q else ".")
    runs = r.gbench("pg", "pg_workloads_bench", pg_filter,
                    reps=1 if q else min(r.reps, 3), extra=pg_args)
    for key in runs:
        k = key
        if m := re.match(r"BM_PgCreate/sync:(\d)", k):
            fig.gb(f"pg.create.sync{m[1]}", runs, key,
                   f"PostgreSQL create, synchronous_commit {m[1]}")
        elif m := re.match(r"BM_PgGetRecord/sync:(\d)", k):
            fig.gb(f"pg.read.sync{m[1]}", runs, key,
                   f"PostgreSQL read by id + event, sync {m[1]}")
        elif m := re.match(r"BM_PgListRecords/sync:(\d)", k):
            fig.gb(f"pg.list.sync{m[1]}", runs, key,
                   f"PostgreSQL list in pages of 100 + events, sync {m[1]},"
                   " per record", unit="us/record")
        elif m := re.match(r"BM_PgShredSubject/records:(\d+)/subjects:(\d+)/"
                           r"events:(\d)/sync:(\d)", k):
            fig.gb(f"pg.shred.r{m[1]}.n{m[2]}.e{m[3]}.sync{m[4]}", runs, key,
                   f"PostgreSQL DELETE of a subject's {m[1]} records in "
                   f"{m[2]} subjects{', events struck' if m[3] == '1' else ''}"
                   f", sync {m[4]}", unit="us/erasure", per_item=False)
        elif m := re.match(r"BM_PgSubjectReport/sync:(\d)", k):
            fig.gb(f"pg.report.sync{m[1]}", runs, key,
                   f"PostgreSQL subject report, sync {m[1]}",
                   unit="us/report", per_item=False)
        elif m := re.match(r"BM_PgBreachScope/events:(\d+)/disclosures:"
                           r"(\d+)/sync:(\d)", k):
            fig.gb(f"pg.breach.e{m[1]}.d{m[2]}{'.sync' if m[3] == '1' else ''}",
                   runs, key, f"PostgreSQL breach scope, {m[2]} disclosures, "
                   f"history of {m[1]} events, sync {m[3]}",
                   unit="us/scope", per_item=False)
        elif m := re.match(r"BM_PgStatisticsInHistory/events:(\d+)", k):
            fig.gb("pg.stats.history", runs, key, "PostgreSQL statistics "
                   f"(GROUP BY over the 10,000 records), {m[1]} events",
                   unit="us/query", per_item=False)
        elif m := re.match(r"BM_PgMixed/sync:(\d).*threads:(\d+)", k):
            fig.gb(f"pg.mixed.c{m[2]}.sync{m[1]}", runs, key,
                   f"PostgreSQL: {m[2]} connections, mixed work (create 4, "
                   f"get 4, list 1, close 1), one call in flight each, "
                   f"sync {m[1]}", unit="us/op (all threads)")
            for p in ("p50", "p99", "p999"):
                fig.add(f"pg.mixed.c{m[2]}.sync{m[1]}.{p}",
                        [b[f"{p}_us"] for b in runs[key] if f"{p}_us" in b],
                        "us", key, f"PostgreSQL {m[2]} mixed connections, "
                        f"sync {m[1]}, latency {p}")
        elif m := re.match(r"BM_PgSyncCreate/.*threads:(\d+)", k):
            fig.gb(f"pg.synccreate.t{m[1]}", runs, key,
                   f"PostgreSQL synchronous creates, {m[1]} connections",
                   unit="us/op (all threads)")
        elif m := re.match(r"BM_DiskFdatasync/at:(\d)", k):
            fig.gb(f"disk.fdatasync.{'end' if m[1] == '1' else 'start'}",
                   runs, key, "one fdatasync of this disk "
                   f"({'end' if m[1] == '1' else 'start'} of the PG run)",
                   unit="us")


def pairs(fig, quick):
    sizes = [10000, 100000] if quick else [10000, 100000, 1000000]
    largest_history = 100000 if quick else 1000000
    fig.ratio("create / raw put of the same bytes (sync off)",
              "create.nosync.custos", "create.nosync.raw", target=0.5)
    if not quick:
        fig.ratio("create / raw put of the same bytes, 1,000,000 each (sync "
                  "off)", "create.million.custos", "create.million.raw",
                  target=0.5)
        for t in (1, 16):
            if f"create.million.sync.custos.t{t}" in fig.series:
                fig.ratio(f"create / raw put of the same bytes, 1,000,000 "
                          f"each (sync on, {t} thread{'s' if t > 1 else ''})",
                          f"create.million.sync.custos.t{t}",
                          f"create.million.sync.raw.t{t}", target=0.5)
    fig.ratio("read / raw get + put (sync off)", "read.nosync.custos",
              "read.nosync.raw", target=0.5)
    fig.ratio("raw LevelDB: get + batch of the read's entries / get + one "
              "put (sync off)", "read.nosync.raw_batch", "read.nosync.raw")
    fig.ratio("close / raw put of the same bytes (sync off)",
              "close.nosync.custos", "close.nosync.raw", target=0.5)
    fig.ratio("create / raw put of the same bytes (sync on, 1 thread)",
              "create.sync.custos.t1", "put.sync.raw.t1", target=0.5)
    fig.ratio("read / raw get + put (sync on, 1 thread)",
              "read.sync.custos.t1", "read.sync.raw.t1", target=0.5)
    for sync in (0, 1):
        fig.ratio(f"list page / raw reads + puts of the same bytes (sync "
                  f"{'on' if sync else 'off'})", f"list.page.custos.sync{sync}",
                  f"list.page.raw.sync{sync}")
    for sync in (0, 1):
        fig.ratio("subject report / raw LevelDB reads of the same values (sync "
                  f"{'on' if sync else 'off'})", f"report.custos.sync{sync}",
                  f"report.raw.sync{sync}")
    fig.ratio("RPC pipelined creates (unix) / bare echo",
              "rpc_create_unix_nosync.us_per_op", "echo.us_per_op",
              target=0.5)
    fig.ratio("16 synced writers / 1 (in-process)", "create.sync.custos.t16",
              "create.sync.custos.t1", target=4.0)
    # What the storage under it does alone on this disk and these cores:
    # raw LevelDB's synchronous puts of the same bytes, 16 threads over 1.
    fig.ratio("raw LevelDB: 16 synced writers / 1", "put.sync.raw.t16",
              "put.sync.raw.t1")
    fig.ratio("16 synced writers / raw LevelDB's 16 (in-process)",
              "create.sync.custos.t16", "put.sync.raw.t16")
    fig.ratio("RPC pipelined creates over TCP / bare echo (unix)",
              "rpc_create_tcp_nosync.us_per_op", "echo.us_per_op")
    # Workloads 1-3 over RPC against the same work in process (no target:
    # what the server and its transports add).
    fig.ratio("RPC pipelined creates over TCP / over the unix socket, sync "
              "off", "rpc_create_tcp_nosync.us_per_op",
              "rpc_create_unix_nosync.us_per_op")
    fig.ratio("RPC pipelined reads (unix) / in-process read, sync off",
              "rpc_get_unix_nosync.us_per_op", "read.nosync.custos")
    fig.ratio("RPC pipelined reads over TCP / over the unix socket, sync off",
              "rpc_get_tcp_nosync.us_per_op", "rpc_get_unix_nosync.us_per_op")
    # The transport for each load measured both ways (no target: the issue
    # asks for both transports).
    for what, name in (("reads", "get"), ("list pages", "list")):
        fig.ratio(f"RPC pipelined {what} over TCP / over the unix socket, "
                  "sync on", f"rpc_{name}_tcp_sync.us_per_op",
                  f"rpc_{name}_unix_sync.us_per_op")
    fig.ratio("RPC pipelined list pages over TCP / over the unix socket, "
              "sync off", "rpc_list_tcp_nosync.us_per_op",
              "rpc_list_unix_nosync.us_per_op")
    for sync, on in (("", "on"), ("_nosync", "off")):
        fig.ratio(f"32 mixed clients over TCP / over the unix socket, sync "
                  f"{on}", f"rpc_mixed_c32_tcp{sync}.us_per_op",
                  f"rpc_mixed_c32{sync}.us_per_op")
    fig.ratio("4 synced connections / 1 (RPC)",
              "rpc_create_unix_sync_c4.us_per_op",
              "rpc_create_unix_sync_c1.us_per_op")
    fig.ratio("16 synced connections / 1 (RPC)",
              "rpc_create_unix_sync_c16.us_per_op",
              "rpc_create_unix_sync_c1.us_per_op", target=4.0)
    # Sweeps. The erasure by key: Custos with sync on against PostgreSQL
    # with fsync on, and sync off against fsync off. Bytes gone: Custos
    # synced (its compactions do not depend on it) against both; in the
    # issue's case also sync off against fsync off.
    for n in sizes + ([] if quick else ["half"]):
        what_n = ("500,000 due of 1,000,000" if n == "half"
                  else f"1,000 due of {n:,}")
        layouts = ("spread",) if n == "half" else ("clustered", "spread")
        for layout in layouts:
            for fsync in ("on", "off"):
                sync = 1 if fsync == "on" else 0
                if (n == "half" and not sync and
                        f"sweep.custos.{layout}.key.s0.nhalf" not in fig.series):
                    sync = 1  # Without --half-sync-off: synced only.
                fig.ratio(f"sweep undecipherable (bucket key destroyed), "
                          f"sync {'on' if sync else 'off'} / PG DELETE, fsync "
                          f"{fsync}, {what_n} {layout}",
                          f"sweep.custos.{layout}.key.s{sync}.n{n}",
                          f"sweep.pg.{fsync}.{layout}.delete.n{n}",
                          target=1.0)
                fig.ratio(f"sweep bytes gone, sync on / PG DELETE + VACUUM "
                          f"FULL, fsync {fsync}, {what_n} {layout}",
                          f"sweep.custos.{layout}.gone.n{n}",
                          f"sweep.pg.{fsync}.{layout}.gone.n{n}", target=1.0)
                if n == "half":  # Issue 16's own sweep target.
                    fig.ratio(f"sweep bytes gone, sync on / PG DELETE, fsync "
                              f"{fsync} (issue 16: >= 0.5x its rate), "
                              f"{what_n} {layout}",
                              f"sweep.custos.{layout}.gone.n{n}",
                              f"sweep.pg.{fsync}.{layout}.delete.n{n}",
                              target=0.5)
                if (n == "half" and fsync == "off" and  # Like for like.
                        f"sweep.custos.{layout}.gone.s0.nhalf" in fig.series):
                    fig.ratio(f"sweep bytes gone, sync off / PG DELETE + "
                              f"VACUUM FULL, fsync off, {what_n} {layout}",
                              f"sweep.custos.{layout}.gone.s0.n{n}",
                              f"sweep.pg.off.{layout}.gone.n{n}", target=1.0)
                    fig.ratio(f"sweep bytes gone, sync off / PG DELETE, "
                              f"fsync off (issue 16: >= 0.5x its rate), "
                              f"{what_n} {layout}",
                              f"sweep.custos.{layout}.gone.s0.n{n}",
                              f"sweep.pg.off.{layout}.delete.n{n}",
                              target=0.5)
                if n not in ("half", 1000000):
                    fig.ratio(f"sweep bytes gone, compaction batched over 3 "
                              f"sweeps, sync on / PG DELETE + VACUUM FULL, "
                              f"fsync {fsync}, {what_n} {layout}",
                              f"sweep.custos.{layout}.gone_batched.n{n}",
                              f"sweep.pg.{fsync}.{layout}.gone.n{n}",
                              target=1.0)
    # The sweep against raw LevelDB deleting the same share of a
    # million values of a create's bytes (concurrency_bench's million) and
    # compacting them away (no target: what the engine costs beside the
    # bare store). Synced against synced, unsynced against unsynced.
    if not quick:
        fig.ratio("sweep undecipherable, sync on / raw LevelDB delete, synced "
                  "batches of 1,000, 500,000 due of 1,000,000 spread",
                  "sweep.custos.spread.key.s1.nhalf",
                  "sweep.raw.spread.delete.s1.nhalf")
        fig.ratio("sweep bytes gone, sync on / raw LevelDB delete + "
                  "compaction of the whole database, 500,000 due of "
                  "1,000,000 spread, both synced",
                  "sweep.custos.spread.gone.nhalf",
                  "sweep.raw.spread.gone.s1.nhalf")
    if not quick and "sweep.custos.spread.gone.s0.nhalf" in fig.series:
        fig.ratio("sweep undecipherable, sync off / raw LevelDB delete, "
                  "unsynced batches of 1,000, 500,000 due of 1,000,000 spread",
                  "sweep.custos.spread.key.s0.nhalf",
                  "sweep.raw.spread.delete.s0.nhalf")
        fig.ratio("sweep bytes gone, sync off / raw LevelDB delete + "
                  "compaction of the whole database, 500,000 due of "
                  "1,000,000 spread, neither synced",
                  "sweep.custos.spread.gone.s0.nhalf",
                  "sweep.raw.spread.gone.s0.nhalf")
    # Against PostgreSQL (no target unless the issue sets one).
    for sync in (0, 1):
        fig.ratio(f"create / PostgreSQL create, sync {'on' if sync else 'off'}",
                  f"create.engine.sync{sync}", f"pg.create.sync{sync}")
        fig.ratio(f"read / PostgreSQL read, sync {'on' if sync else 'off'}",
                  f"read.engine.sync{sync}", f"pg.read.sync{sync}")
    fig.ratio("list (per record) / PostgreSQL list, sync off",
              "list.custos", "pg.list.sync0")
    for sync in (0, 1):
        fig.ratio(f"subject report / PostgreSQL's, sync "
                  f"{'on' if sync else 'off'}", f"report.custos.sync{sync}",
                  f"pg.report.sync{sync}")
    # A shred also leaves the subject's parts of the history undecipherable:
    # PostgreSQL's peer "events struck" does the same to its events; "its
    # records only" is the plainest reading of the issue's DELETE
    # (docs/decisions.md, "the shred's PostgreSQL peer"). Both are shown,
    # each against the 100x target.
    # In the keystore of 1,000 subjects (shred_bench), warm, sync on (the
    # shred of 10 records against PostgreSQL's: in the loop below).
    for events, what in ((1, "events struck"), (0, "its records only")):
        fig.ratio(f"shred of 10,000 records / PostgreSQL DELETE of the "
                  f"same rows (1,000 subjects, {what}, sync on)",
                  "shred.latency.warm.k1000",
                  f"pg.shred.r10000.n1000.e{events}.sync1", target=100.0)
    largest = 10000 if quick else 1000000
    for events, what in ((1, "events struck"), (0, "its records only")):
        fig.ratio(f"shred of 10,000 records / PostgreSQL DELETE of the same "
                  f"rows ({largest:,} subjects, {what}, sync on)",
                  f"shred.latency.custos.k{largest}",
                  f"pg.shred.r10000.n{largest}.e{events}.sync1", target=100.0)
    fig.limit("shred of 10,000 records in a keystore of 1,000 subjects, "
              "us (an absolute figure, not a ratio)",
              "shred.latency.custos.k1000", 1000.0)
    fig.limit(f"shred of 10,000 records in a keystore of {largest:,} "
              "subjects, us (an absolute figure)",
              f"shred.latency.custos.k{largest}", 1000.0)
    fig.limit(f"shred of 10,000 records in a keystore of {largest:,} "
              "subjects, its table open, us (an absolute figure)",
              f"shred.latency.warm.k{largest}", 1000.0)
    # 5 in the two store sizes, each erasure warm: the shred of 10
    # and of 10,000 records against raw LevelDB deleting as many records
    # (the same run, durability for durability), and the shred of 10
    # against PostgreSQL's DELETE (10,000: above).
    for k in (1000, largest):
        for n, small in ((10000, ""), (10, "small.")):
            for sync, off in ((1, ""), (0, "off.")):
                ours = (f"shred.latency.warm.k{k}" if n == 10000 and sync
                        else f"shred.{off}{small}warm.k{k}")
                fig.ratio(f"shred of {n:,} records, keystore of {k:,} "
                          f"subjects, warm / raw LevelDB delete of as many "
                          f"(sync {'on' if sync else 'off'})", ours,
                          f"raw.shred.r{n}.k{k}.sync{sync}",
                          note="" if sync else
                          "a shred syncs its keystore write with sync off "
                          "too; the raw delete does not sync")
        for events, what in ((1, "events struck"), (0, "its records only")):
            for sync, off in ((1, ""), (0, "off.")):
                on = "on" if sync else "off"
                fig.ratio(f"shred of 10 records, keystore of {k:,} subjects, "
                          f"warm, sync {on} / PostgreSQL DELETE of the same "
                          f"rows ({k:,} subjects, {what}, sync {on})",
                          f"shred.{off}small.warm.k{k}",
                          f"pg.shred.r10.n{k}.e{events}.sync{sync}")
    for t in (1, 4, 16):
        fig.ratio(f"{t} synced writers / PostgreSQL's {t} connections",
                  f"create.sync.custos.t{t}", f"pg.synccreate.t{t}")
    fig.ratio("PostgreSQL: 16 synced connections / 1", "pg.synccreate.t16",
              "pg.synccreate.t1")
    # 7: 32 clients' mixed work, custosd (4 calls in flight a connection)
    # against PostgreSQL (one a connection: libpq's synchronous calls): not
    # like for like (128 calls in flight against 32; with sync on, more
    # writers waiting share more of each fsync).
    for sync, on in (("", 1), ("_nosync", 0)):
        fig.ratio(f"32 mixed clients over RPC (unix, 4 calls in flight "
                  f"each) / PostgreSQL's 32 connections (1 each), sync "
                  f"{'on' if on else 'off'}",
                  f"rpc_mixed_c32{sync}.us_per_op", f"pg.mixed.c32.sync{on}")
    # Flat growth: the cost at the largest store over the smallest (a
    # "ratio" of the small one's cost to the large one's; flat is 1).
    for layout in ("clustered", "spread"):
        for what, said in (("key.s0", "undecipherable, sync off"),
                           ("key.s1", "undecipherable, sync on"),
                           ("sweep.s0", "whole sweep without compaction, "
                                        "sync off"),
                           ("sweep.s1", "whole sweep without compaction, "
                                        "sync on"),
                           ("gone", "bytes gone, sync on")):
            # Every larger size against the smallest, not the ends only.
            for n in sizes[1:]:
                fig.ratio(f"sweep {said}, {layout}: 10k cost / {n:,} cost "
                          "(flat within +-50%: 0.67..1.5)",
                          f"sweep.custos.{layout}.{what}.n{n}",
                          f"sweep.custos.{layout}.{what}.n10000", target=0.67,
                          at_most=1.5)
    fig.ratio(f"list: 10k-record store cost / {sizes[-1]:,}-record store cost",
              f"list.growth.n{sizes[-1]}", "list.growth.n10000", target=0.67,
              at_most=1.5)
    # --quick's shreds run at 1,000 and 10,000 subjects only.
    small, large = (1000, 10000) if quick else (10000, sizes[-1])
    for state, said in (("custos", "just opened"), ("warm", "tables open")):
        fig.ratio(f"shred: {small:,}-subject keystore cost / {large:,}-"
                  f"subject keystore cost, {said}",
                  f"shred.latency.{state}.k{large}",
                  f"shred.latency.{state}.k{small}", target=0.67,
                  at_most=1.5)
    if not quick:
        fig.ratio("statistics query: 10k-record store cost / "
                  "100,000-record store cost",
                  "stats.query.n100000", "stats.query.n10000")
    for op in ("create", "close"):
        fig.ratio(f"{op}: cost without the statistics index / with it",
                  f"stats.{op}.index1", f"stats.{op}.index0")
    for d in (100, 1000, 10000):
        fig.ratio(f"breach scope of {d}: 25k-event history cost / "
                  f"{largest_history:,}-event history cost",
                  f"breach.e{largest_history}.d{d}", f"breach.e25000.d{d}",
                  target=0.67, at_most=1.5)
    # 8 against raw LevelDB and PostgreSQL holding the same history (no
    # target in the issue: what Custos's scope costs beside the bare
    # store and beside a DELETE-less SQL peer).
    for d in (100, 1000, 10000):
        for sync in ("", ".sync"):
            on = "on" if sync else "off"
            ours = f"breach.e{largest_history}.d{d}{sync}"
            fig.ratio(f"breach scope of {d} in {largest_history:,} events, "
                      f"sync {on}: raw LevelDB / Custos",
                      ours, f"raw.{ours}")
            fig.ratio(f"breach scope of {d} in {largest_history:,} events, "
                      f"sync {on}: PostgreSQL / Custos", ours, f"pg.{ours}")
    if not quick:
        fig.ratio("statistics in the breach store: raw LevelDB scan / Custos",
                  "stats.query.history", "raw.stats.query.history")
        fig.ratio("statistics in the breach store: PostgreSQL GROUP BY / "
                  "Custos", "stats.query.history", "pg.stats.history")
    # 4-6 over RPC (custos_load --scenario) against the same call in
    # process, durability for durability where the in-process side has
    # both (engine_bench's report, sweep_bench's whole sweep); the shreds
    # in process are shred_bench's with sync off in its keystore of 1,000
    # subjects, warm (a shred's keystore write is synced either way). The
    # in-process stores are settled (compacted). No target: what the
    # server, its transport and an unsettled store add.
    for sync, s in (("sync", 1), ("nosync", 0)):
        on = "on" if s else "off"
        fig.ratio(f"RPC subject report / in-process, sync {on}",
                  f"rpc_report_{sync}.us", f"report.custos.sync{s}")
        for n, ours in ((10, "shred.off.small.warm.k1000"),
                        (10000, "shred.off.warm.k1000")):
            fig.ratio(f"RPC shred of {n:,} records (sync {on}) / in-process "
                      "(sync off, 1,000 subjects, warm)",
                      f"rpc_shred{n}_{sync}.us", ours)
    # The RPC sweeps run with --erasure-compaction-delay=0, so custosd
    # compacts what a sweep erased before it answers: sweep_bench's "bytes
    # gone" (run synced only) is the like-for-like figure.
    for sync in ("sync", "nosync"):
        fig.ratio("RPC sweep / in-process sweep with compaction (bytes "
                  "gone, sync on), 1,000 due of 10,000 spread, per due "
                  f"record, RPC sync {'on' if sync == 'sync' else 'off'}",
                  f"rpc_sweep_{sync}.us_per_due",
                  "sweep.custos.spread.gone.n10000")
    # The RPC call answers once the whole sweep is over (its rewrite of the
    # erased records to stubs included), so against the in-process whole
    # sweep; the in-process bytes-gone figure ends before that rewrite.
    if "rpc_sweep_half_sync.us_per_due" in fig.series:  # --rpc-half
        fig.ratio("RPC sweep / in-process whole sweep (compaction on, the "
                  "rewrite to stubs included, sync on), 500,000 due of "
                  "1,000,000 spread, per due record",
                  "rpc_sweep_half_sync.us_per_due",
                  "sweep.custos.spread.whole.s1.nhalf")
    # 8 over RPC against breach_bench's in-process figures, in histories of
    # the same size: the scope durability for durability (sync off: the
    # synced custosd's history, restarted with --no-sync); the statistics (a
    # read that writes nothing: one in-process figure, of 1,000,000 events,
    # so the full run only) against either RPC durability.
    for sync, s in (("sync", ".sync"), ("nosync", "")):
        on = "on" if s else "off"
        fig.ratio(f"RPC breach scope of 1,000 in {largest_history:,} events "
                  f"/ in-process, sync {on}", f"rpc_breach_{sync}.scope_us",
                  f"breach.e{largest_history}.d1000{s}")
        if not quick:
            fig.ratio("RPC statistics in the breach store (1,000,000 "
                      f"events, RPC sync {on}) / in-process",
                      f"rpc_breach_{sync}.stats_us", "stats.query.history")
    # The transport: each call over loopback TCP against the same call over
    # the unix socket, in servers of their own on data of the same shape.
    # No target: the issue asks for both transports measured. "TCP / unix
    # socket" as every ratio here: TCP's rate over the unix socket's (the
    # unix socket's cost over TCP's; below 1, TCP is slower).
    for sync in ("sync", "nosync"):
        on = "on" if sync == "sync" else "off"
        fig.ratio(f"RPC subject report, sync {on}: TCP / unix socket",
                  f"rpc_report_tcp_{sync}.us", f"rpc_report_{sync}.us")
        for n in (10, 10000):
            fig.ratio(f"RPC shred of {n:,} records, sync {on}: TCP / unix "
                      "socket", f"rpc_shred{n}_tcp_{sync}.us",
                      f"rpc_shred{n}_{sync}.us")
        fig.ratio(f"RPC sweep, 1,000 due of 10,000, sync {on}: TCP / unix "
                  "socket", f"rpc_sweep_tcp_{sync}.us_per_due",
                  f"rpc_sweep_{sync}.us_per_due")
    # The breach scope with sync off against sync on, both by a custosd
    # restarted on the same history (custos_load --then-no-sync).
    fig.ratio("RPC breach scope of 1,000, both after a restart: sync off / "
              "sync on", "rpc_breach_nosync.scope_us",
              "rpc_breach_sync_restarted.scope_us")
    # The breach scope and the statistics over TCP: the same custosd and
    # history, right after the unix socket's (custos_load --tcp-too; each
    # transport's calls after one untimed scope and statistics query).
    fig.ratio("RPC breach scope of 1,000, sync on: TCP / unix socket",
              "rpc_breach_tcp_sync.scope_us", "rpc_breach_sync.scope_us")
    fig.ratio("RPC statistics in the breach store, sync on: TCP / unix "
              "socket", "rpc_breach_tcp_sync.stats_us",
              "rpc_breach_sync.stats_us")


# ---- Output --------------------------------------------------------------

def machine():
    def cmd(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, text=True,
                                  stderr=subprocess.DEVNULL).stdout.strip()
        except OSError:
            return ""
    cpu = ""
    for line in cmd(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem,
            "kernel": platform.release(),
            "os": cmd(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
            "commit": cmd(["git", "-C", HERE, "rev-parse", "--short", "HEAD"]),
            "dirty": bool(cmd(["git", "-C", HERE, "status", "--porcelain",
                               "--untracked-files=no"])),
            "loadavg": open("/proc/loadavg").read().split()[:3]}


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(fig):
    lines = ["| figure | unit | median | min | max | n | source |",
             "|---|---|---:|---:|---:|---:|---|"]
    for name, s in sorted(fig.series.items()):
        lines.append(f"| {s['label']} | {s['unit']} | {fmt(s['median'])} | "
                     f"{fmt(s['min'])} | {fmt(s['max'])} | {s['n']} | "
                     f"`{name}` |")
    lines += ["", "| ratio (>= 1: Custos at least as fast; an absolute "
              "figure where it says so) | median | min |"
              " max | target | met | paired |",
              "|---|---:|---:|---:|---:|---|---|"]
    for r in fig.ratios:
        if r.get("missing"):
            continue
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        target = (f"<= {fmt(r['limit'])}" if "limit" in r
                  else f"{fmt(r['target'])}..{fmt(r['at_most'])}"
                  if r.get("at_most") is not None
                  else fmt(r["target"]))
        paired = ("" if "limit" in r else
                  "pairs" if r.get("paired") else "medians")
        name = r["name"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"| {name} | {fmt(r['median'])} | {fmt(r['min'])} |"
                     f" {fmt(r['max'])} | {target} | {met} | {paired} |")
    missing = [r["name"] for r in fig.ratios if r.get("missing")]
    if missing:
        lines += ["", "Not measured in this run (a side missing): " +
                  "; ".join(missing) + "."]
    return "\n".join(lines)


def growth_table(growth):
    """The growth figures as a table: one row per store size."""
    if not growth:
        return ""
    names = sorted(growth)
    sizes = sorted({n for g in growth.values() for n in g})
    lines = ["Growth (µs per operation; a sweep's per due record, a list's "
             "per record; store size in records, the shred's in keystore "
             "subjects):", "",
             "| size | " + " | ".join(n.replace("_", " ") for n in names) +
             " |", "|---:|" + "---:|" * len(names)]
    for n in sizes:
        lines.append(f"| {n:,} | " + " | ".join(
            fmt(growth[k].get(n)) for k in names) + " |")
    return "\n".join(lines)


def plot(growth, out, png_dir):
    """The growth table to OUT/growth.dat, its plot to png_dir/growth.png."""
    if not growth or shutil.which("gnuplot") is None:
        return None
    dat = os.path.join(out, "growth.dat")
    names = sorted(growth)
    sizes = sorted({n for g in growth.values() for n in g})
    with open(dat, "w") as f:
        f.write("# records " + " ".join(names) + "\n")
        for n in sizes:
            f.write(f"{n} " + " ".join(
                str(growth[k].get(n, "NaN")) for k in names) + "\n")
    png = os.path.join(png_dir, "growth.png")
    script = (f"set terminal png size 900,560; set output '{png}';"
              "set logscale x; set logscale y; set key left top;"
              "set xlabel 'records (shred: subjects) in the store';"
              "set ylabel 'us per operation (sweep: per due record)';"
              "set title 'Custos: cost against store size (compare.py)';"
              "plot " + ", ".join(
                  f"'{dat}' using 1:{i + 2} with linespoints title "
                  f"'{k.replace('_', ' ')}'" for i, k in enumerate(names)))
    subprocess.run(["gnuplot", "-e", script], check=False)
    return png if os.path.exists(png) else None


def shown(path):
    """`path` relative to the checkout when inside it, else absolute."""
    root = os.path.dirname(HERE)
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


def write_results_md(text):
    path = os.path.join(HERE, "RESULTS.md")
    with open(path) as f:
        content = f.read()
    block = BEGIN + "\n" + text + "\n" + END
    if BEGIN in content and END in content:
        head = content[:content.index(BEGIN)]
        tail = content[content.index(END) + len(END):]
        content = head + block + tail
    else:
        content = content.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(content)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build/release")
    p.add_argument("--out", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repetitions", type=int, default=None)
    p.add_argument("--half-sync-off", action="store_true",
                   help="full run: also sweep the 500,000 due of 1,000,000 "
                        "with sync off (a copy of the same store: about a "
                        "minute more, past the 30 minutes on a slow day)")
    p.add_argument("--million-sync", action="store_true",
                   help="full run: the million synced creates and synced "
                        "raw puts also from 1 thread (16 threads always: "
                        "about nine minutes more)")
    p.add_argument("--rpc-half", action="store_true",
                   help="full run: also the sweep of 500,000 due of "
                        "1,000,000 over RPC (its million creates replace "
                        "rpc_create_million: about a minute and a half "
                        "more)")
    p.add_argument("--no-results-md", action="store_true")
    p.add_argument("--replay", action="store_true",
                   help="run nothing: pair and print the figures of an "
                        "earlier run's --out DIR again")
    p.add_argument("--only", default="",
                   help="comma-separated run names (concurrency, engine, "
                        "list, shred, sweep, sweep_half (with sweep: in its "
                        "run), sweep_pg_fsync_on, "
                        "sweep_pg_fsync_off, echo, rpc_..., breach, stats, "
                        "stats_write, pg; bench/README.md lists them all)")
    a = p.parse_args()
    reps = a.repetitions or 3
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    out = a.out or os.path.join("/tmp", f"custos-compare-{stamp}")
    only = set(x for x in a.only.split(",") if x)
    if a.replay and not a.out:
        p.error("--replay needs --out DIR of an earlier run")
    r = Runner(a.build, out, a.quick, reps, only, replay=a.replay)
    r.half_sync_off = a.half_sync_off
    r.million_sync = a.million_sync
    r.rpc_half = a.rpc_half
    earlier = {}
    if a.replay:
        with open(os.path.join(out, "compare.json")) as f:
            earlier = json.load(f)
        r.log = earlier.get("runs", [])
        stamp = earlier.get("when", stamp)
        # The run's own options decide what it made (its raw output).
        recorded = earlier.get("flags") or []
        r.million_sync = r.million_sync or "--million-sync" in recorded
        r.rpc_half = r.rpc_half or "--rpc-half" in recorded
        r.half_sync_off = r.half_sync_off or "--half-sync-off" in recorded
    fig = Figures()
    growth = {}
    info = earlier.get("machine") or machine()
    started = time.monotonic()
    run_all(r, fig, growth)
    pairs(fig, a.quick)
    if not a.replay:
        info["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    seconds = earlier.get("seconds", time.monotonic() - started)
    # bench/growth.png belongs with RESULTS.md: a run that leaves RESULTS.md
    # alone leaves the plot in OUT.
    png = plot(growth, out, out if a.no_results_md else HERE)
    result = {"when": stamp, "mode": "quick" if a.quick else "full",
              "replayed": a.replay,
              "repetitions": reps, "seconds": round(seconds), "machine": info,
              "runs": r.log, "series": fig.series, "ratios": fig.ratios,
              "growth": growth}
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(result, f, indent=2)
    # The options that change what runs, as given (a replay shows the
    # original run's: its compare.json keeps them).
    flags = earlier.get("flags") if a.replay else None
    if flags is None:
        flags = [f for f, on in (("--quick", a.quick),
                                 ("--million-sync", a.million_sync),
                                 ("--rpc-half", a.rpc_half),
                                 ("--half-sync-off", a.half_sync_off)) if on]
    result["flags"] = flags
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(result, f, indent=2)
    text = (f"## Side by side (compare.py, {'--quick' if a.quick else 'full'}"
            f" run of {stamp})\n\n"
            f"Command: `./dev bench{''.join(' ' + f for f in flags)}` "
            f"(`bench/compare.py`), {round(seconds)} s, {reps} repetitions "
            f"where repeated. Machine: {info['cpu']}, {info['cores']} cores, "
            f"{info['memory']}, {info['os']}, kernel {info['kernel']}; "
            f"commit {info['commit']}{' (with local changes)' if info['dirty'] else ''}; "
            f"load average before {' '.join(info['loadavg'])}, after "
            f"{' '.join(info['loadavg_after'])}.\n"
            "Figures are medians with min and max. A ratio is computed "
            "pair by pair (repetition i against repetition i, summarised "
            "the same way) when both sides come from one interleaved run "
            "with as many repetitions (\"pairs\"); otherwise it is the "
            "ratio of the medians, its range from the extremes "
            "(\"medians\")."
            + (" Paired again from the run's raw output (`--replay`)."
               if a.replay else "") + "\n\n" + table(fig) +
            ("\n\n" + growth_table(growth) if growth else "") +
            (f"\n\nGrowth plot: `{shown(png)}`." if png else "")
            + "\n\nRuns: " + "; ".join(
                f"{x['name']} {x['seconds']} s"
                + ("" if x["exit"] == 0 else f" (FAILED: {x['exit']})")
                for x in r.log) + ".")
    print(text)
    if not a.no_results_md:
        write_results_md(text)
    print(f"compare: {out}/compare.json", file=sys.stderr)
    return 1 if any(x["exit"] != 0 for x in r.log) else 0


if __name__ == "__main__":
    sys.exit(main())
