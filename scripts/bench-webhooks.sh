#!/usr/bin/env bash
# Load benchmark of the webhook receiver against the `webhook` peer (Debian package), in one run,
# with the same signed GitHub push delivery and the same wrk script.
#
#   scripts/bench-webhooks.sh [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--secs 10] [--runs 3]
#
# Needs: wrk and webhook (apt-get install wrk webhook), python3, ../shared/bench.
# Prints accepted deliveries/s and p50/p99 at 16 and 64 connections for each backend, the
# rejected-signature rate, pmapd's peak RSS, the peer's figures, and the ratios.
# Loopback only; every wrk run is bounded by --secs; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url=""
secs=10
runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) pg_url="$2"; shift 2 ;;
    --secs) secs="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

bench_dir="$(cd .. && pwd)/shared/bench"
for tool in wrk webhook python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required (apt-get install wrk webhook)" >&2; exit 2; }
done

cargo build --release -q -p pmapd
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')"
pmapd="$target_dir/release/pmapd"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

secret="bench-secret-0123456789abcdef"
python3 "$bench_dir/gen_payload.py" "$work" "$secret" >/dev/null
admin="bench-admin-token-0123456789"

# One wrk run; prints "rps p50 p99 non2xx".
load() {
  local url="$1" sig="$2" conns="$3"
  BODY_FILE="$work/push.json" SIG_FILE="$sig" \
    wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s -s "$bench_dir/post_signed.lua" "$url" 2>/dev/null |
    awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                     print v["rps"], v["p50_ms"], v["p99_ms"], v["non2xx"] }'
}

# The median (by requests/s) of several runs.
median_load() {
  local out=()
  for _ in $(seq 1 "$runs"); do out+=("$(load "$@")"); done
  printf '%s\n' "${out[@]}" | sort -n -k1 | sed -n "$(( (runs + 1) / 2 ))p"
}

wait_ready() {
  for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "not ready: $1" >&2; return 1
}

results=()

bench_pmapd() {
  local backend="$1" db_url="$2" port="$3"
  local data="$work/data-$backend"
  mkdir -p "$data"
  PMAP_LISTEN="127.0.0.1:$port" PMAP_DATA_DIR="$data" PMAP_DATABASE_URL="$db_url" \
    PMAP_ADMIN_TOKEN="$admin" RUST_LOG=warn "$pmapd" serve >"$work/pmapd-$backend.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_ready "http://127.0.0.1:$port/readyz"
  local id
  id="$(curl -fs -X POST "http://127.0.0.1:$port/api/v1/integrations" \
    -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench\",\"vendor\":\"github\",\"secret\":\"$secret\"}" |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')"
  local url="http://127.0.0.1:$port/api/v1/webhooks/ci/github/$id"
  for conns in 16 64; do
    read -r rps p50 p99 bad < <(median_load "$url" "$work/sig_good.txt" "$conns")
    results+=("pmapd/$backend accepted c=$conns: ${rps}/s p50 ${p50} ms p99 ${p99} ms (non-2xx $bad)")
    eval "acc_${backend}_${conns}=$rps"
  done
  read -r rps p50 p99 bad < <(median_load "$url" "$work/sig_bad.txt" 64)
  results+=("pmapd/$backend rejected c=64: ${rps}/s p50 ${p50} ms p99 ${p99} ms (non-2xx $bad)")
  eval "rej_${backend}=$rps"
  local rss
  rss="$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")"
  results+=("pmapd/$backend peak RSS: ${rss} MB")
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

bench_peer() {
  (cd /tmp && webhook -hooks "$bench_dir/hooks.json" -ip 127.0.0.1 -port 9077 >"$work/peer.log" 2>&1) &
  pids+=("$!")
  sleep 1
  local url="http://127.0.0.1:9077/hooks/github-push"
  read -r rps p50 p99 bad < <(median_load "$url" "$work/sig_good.txt" 64)
  results+=("webhook peer accepted c=64: ${rps}/s p50 ${p50} ms p99 ${p99} ms (non-2xx $bad)")
  peer_acc=$rps
  read -r rps p50 p99 bad < <(median_load "$url" "$work/sig_bad.txt" 64)
  results+=("webhook peer rejected c=64: ${rps}/s p50 ${p50} ms p99 ${p99} ms (non-2xx $bad)")
  peer_rej=$rps
}

bench_peer
bench_pmapd sqlite "sqlite://$work/data-sqlite/pmap.db" 18081
if [ -n "$pg_url" ]; then
  db="pmap_bench_$$"
  psql "$pg_url" -qAt -c "CREATE DATABASE $db" >/dev/null
  bench_pmapd postgres "${pg_url%/*}/$db" 18082
  psql "$pg_url" -qAt -c "DROP DATABASE $db WITH (FORCE)" >/dev/null || true
fi

echo
echo "== results (median of $runs x ${secs}s runs, wrk -t2, one 9.9 KB signed GitHub push)"
printf '%s\n' "${results[@]}"
ratio() { python3 -c "a,b=float('$1'),float('$2');print(f'{a/b:.2f}' if b else 'n/a')"; }
echo "ratio accepted sqlite c=64 / peer: $(ratio "$acc_sqlite_64" "$peer_acc")"
echo "ratio rejected sqlite c=64 / peer: $(ratio "$rej_sqlite" "$peer_rej")"
if [ -n "$pg_url" ]; then
  echo "ratio accepted postgres c=64 / peer: $(ratio "$acc_postgres_64" "$peer_acc")"
  echo "ratio rejected postgres c=64 / peer: $(ratio "$rej_postgres" "$peer_rej")"
fi
