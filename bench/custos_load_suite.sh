#!/bin/sh
# Issue 12's figures in one run (bench/README.md, "custos_load"): bare echo
# against pipelined creates over the unix socket, the in-process engine,
# synchronous 1 against 16 connections, and custosd's peak RSS under 32
# connections. Usage: bench/custos_load_suite.sh BUILD_DIR OUT_DIR [SECONDS]
# Each run's JSON goes to OUT_DIR/NAME.json; a summary table to stdout.
set -eu
build=$1
out=$2
seconds=${3:-10}
load="$build/bench/custos_load"
mkdir -p "$out"

run() {
  name=$1
  shift
  "$load" --duration "$seconds" --warmup 1 "$@" >"$out/$name.json"
}

echo "load before: $(uptime)" >"$out/load.txt"
run echo_c1_d16 --start-server --echo -c 1 -d 16
run create_nosync_c1_d16 --start-server --no-sync --mix create=1 -c 1 -d 16
run inproc_nosync_t1 --in-process --no-sync -c 1
run inproc_nosync_t4 --in-process --no-sync -c 4
run create_sync_c1_d1 --start-server --mix create=1 -c 1 -d 1
run create_sync_c16_d1 --start-server --mix create=1 -c 16 -d 1
run create_sync_c16_d1_w16 --start-server --mix create=1 -c 16 -d 1 \
  --server-arg=--workers=16
run inproc_sync_t1 --in-process -c 1
run inproc_sync_t16 --in-process -c 16
run mix_sync_c32_d4 --start-server -c 32 -d 4
echo "load after: $(uptime)" >>"$out/load.txt"

cat "$out/load.txt"
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
runs = {}
for f in sorted(os.listdir(out)):
    if f.endswith(".json"):
        runs[f[:-5]] = json.load(open(os.path.join(out, f)))
print(f"{'run':24} {'ops/s':>9} {'p50 us':>8} {'p99 us':>8} {'p999 us':>8} {'err':>4} {'peak RSS KiB':>12}")
for name, r in runs.items():
    lat = r["latency_us"]
    rss = r.get("server", {}).get("peak_rss_kib", "")
    print(f"{name:24} {r['ops_per_s']:9.0f} {lat['p50']:8.0f} {lat['p99']:8.0f} {lat['p999']:8.0f} {r['errors']:4} {rss:>12}")
def ratio(a, b):
    return runs[a]["ops_per_s"] / runs[b]["ops_per_s"]
print(f"pipelined creates / bare echo (1 conn, depth 16): {ratio('create_nosync_c1_d16', 'echo_c1_d16'):.2f}x (target >= 0.5)")
print(f"pipelined creates / in-process, 1 thread (no sync): {ratio('create_nosync_c1_d16', 'inproc_nosync_t1'):.2f}x")
print(f"pipelined creates / in-process, 4 threads (no sync): {ratio('create_nosync_c1_d16', 'inproc_nosync_t4'):.2f}x")
print(f"sync creates, 16 conns / 1 conn: {ratio('create_sync_c16_d1', 'create_sync_c1_d1'):.2f}x (target >= 4)")
print(f"sync creates, 16 conns / 1 conn, custosd --workers=16: {ratio('create_sync_c16_d1_w16', 'create_sync_c1_d1'):.2f}x")
print(f"sync creates in process, 16 threads / 1: {ratio('inproc_sync_t16', 'inproc_sync_t1'):.2f}x")
PY
