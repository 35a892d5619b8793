#!/usr/bin/env bash
# usage: bench/run.sh
#
# serve_host and wire-baseline side by side, from a clone: builds both (and
# loadgen) in release, then for each scenario and transport (tcp, unix, tls)
# runs each server on SERVER_CPU and loadgen on LOAD_CPU for BENCH_SECONDS,
# one server at a time, appends loadgen's JSON line to $RESULTS and ends with
# a table and the ratios serve_host / wire-baseline. tls runs serve_host only
# (the baseline has no TLS), with a throwaway CA and certificate made by
# openssl; its rows compare with serve_host's tcp rows.
#
# Environment: RESULTS (/tmp/rpc-bench.jsonl, emptied first), BENCH_SECONDS (3),
# REPEAT (1; the table shows medians), SCENARIOS (all: "latency fan-in
# pipelined version large crowd"), TRANSPORTS ("tcp unix tls"),
# SERVER_CPU (0), LOAD_CPU (1). Needs taskset, timeout, python3 (and openssl
# for tls).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=${RESULTS:-/tmp/rpc-bench.jsonl}
SECS=${BENCH_SECONDS:-3}
REPEAT=${REPEAT:-1}
SCENARIOS=${SCENARIOS:-latency fan-in pipelined version large crowd}
TRANSPORTS=${TRANSPORTS:-tcp unix tls}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BIN=$ROOT/target/release

echo "building serve_host, wire-baseline and loadgen (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet --bin serve_host --bin wire-baseline --bin loadgen) || exit 1

: > "$RESULTS"
TMP=$(mktemp -d /tmp/rpc-bench.XXXXXX)
SPID=
stop_server() {
  [ -n "$SPID" ] || return 0
  kill "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  SPID=
}
trap 'stop_server; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# A CA and a certificate for 127.0.0.1, for the tls runs.
if [[ " $TRANSPORTS " == *" tls "* ]]; then
  (
    cd "$TMP" &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout server.key -out server.csr -subj /CN=bench-server &&
      printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf &&
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out server.pem -days 2 -extfile ext.cnf
  ) > "$TMP/openssl.log" 2>&1 || { cat "$TMP/openssl.log" >&2; exit 1; }
fi

# run_one SCENARIO LABEL TRANSPORT SERVER_BINARY
run_one() {
  local scenario=$1 label=$2 transport=$3 server=$4 addr line tls=()
  if [ "$transport" = unix ]; then
    addr=unix:$TMP/$label.sock
  else
    addr=$transport:127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  fi
  [ "$transport" = tls ] && tls=(--ca "$TMP/ca.pem")
  # exec: the PID is the server's own, for loadgen's /proc/PID/stat.
  RPC_TLS_CERT=$TMP/server.pem RPC_TLS_KEY=$TMP/server.key \
    taskset -c "$SERVER_CPU" bash -c 'exec timeout -k 2 "$0" "$@"' "$((SECS + 30))" \
    "$server" "$addr" > "$TMP/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 100); do
    "$BIN/loadgen" "$addr" "${tls[@]}" --probe 2>/dev/null && break
    sleep 0.05
  done
  # timeout's child is the server.
  local pid
  pid=$(pgrep -P "$SPID" | head -n 1)
  line=$(taskset -c "$LOAD_CPU" "$BIN/loadgen" "$addr" "${tls[@]}" --scenario "$scenario" --seconds "$SECS" \
    --label "$label" --server-pid "${pid:-$SPID}") || echo "  ($label $scenario/$transport: errors or failure)" >&2
  stop_server
  if [ -n "$line" ]; then
    echo "$line" >> "$RESULTS"
    echo "  $line" >&2
  fi
}

for _ in $(seq "$REPEAT"); do
  for scenario in $SCENARIOS; do
    for transport in $TRANSPORTS; do
      [ "$transport" = tls ] || run_one "$scenario" wire-baseline "$transport" "$BIN/wire-baseline"
      run_one "$scenario" serve_host "$transport" "$BIN/serve_host"
    done
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in rows:
    groups.setdefault((r["scenario"], r["transport"], r["label"]), []).append(r)
def med(rs, key):
    xs = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(xs) if xs else None
fig = {k: {m: med(v, m) for m in ("rps", "p50_us", "p99_us", "server_cpu_us")} for k, v in groups.items()}
keys = sorted({(s, t) for s, t, _ in fig}, key=lambda k: (rows.index(next(r for r in rows if (r["scenario"], r["transport"]) == k))))
servers = ["wire-baseline", "serve_host"]
n = max((len(v) for v in groups.values()), default=0)
print(f"\nmedian of {n} run(s) each; cpu/req = server CPU µs per request")
print(" " * 16 + "".join(f"| {s:<33}" for s in servers) + "| serve_host / wire-baseline")
print(f"{'scenario':<10}{'net':<6}" + f"| {'rps':>8} {'p50us':>7} {'p99us':>7} {'cpu/req':>7} " * 2 + f"| {'rps':>6} {'p50':>6} {'p99':>6} {'cpu':>6}")
def cell(f):
    if not f:
        return f"| {'-':>8} {'-':>7} {'-':>7} {'-':>7} "
    cpu = f"{f['server_cpu_us']:>7.2f}" if f["server_cpu_us"] is not None else f"{'-':>7}"
    return f"| {f['rps']:>8.0f} {f['p50_us']:>7.1f} {f['p99_us']:>7.1f} {cpu} "
def ratio(a, b, k):
    return f"{a[k] / b[k]:>6.2f}" if a and b and a.get(k) and b.get(k) else f"{'-':>6}"
for s, t in keys:
    b, p = fig.get((s, t, "wire-baseline")), fig.get((s, t, "serve_host"))
    print(f"{s:<10}{t:<6}" + cell(b) + cell(p) + "| " + " ".join(ratio(p, b, k) for k in ("rps", "p50_us", "p99_us", "server_cpu_us")))
for r in rows:
    if r["errors"]:
        print(f"WARNING: {r['label']} {r['scenario']}/{r['transport']}: {r['errors']} errors")
PY
echo
echo "results: $RESULTS ($(wc -l < "$RESULTS") runs, ${SECONDS}s)"
