#!/usr/bin/env bash
# Import benchmark: a 100,000-result SARIF baseline, then a head with every result moved 4 lines
# and 50 new ones, imported through `pmapd import` into a release `pmapd serve`.
#
#   scripts/bench-import.sh [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--results N]
#
# Needs python3 and ../shared/bench/gen_sarif.py. Checks that the head import reports exactly 50
# new and 0 fixed, and prints each import's wall time and the server's peak RSS (VmHWM). When
# `sarif` (PyPI sarif-tools) is installed, also times `sarif diff base head` under
# /usr/bin/time -v, which compares the two files without storing anything, and prints the ratio.
# SQLite always; PostgreSQL too when --postgres names a server (a fresh database is created and
# dropped). Loopback only; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url=""
results=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) pg_url="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

bench_dir="$(cd .. && pwd)/shared/bench"
[ -f "$bench_dir/gen_sarif.py" ] || { echo "missing $bench_dir/gen_sarif.py" >&2; exit 2; }

cargo build --release -q -p pmapd
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')"
pmapd="$target_dir/release/pmapd"

work="$(mktemp -d)"
server_pid=""
pg_db=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$pg_db" ]; then psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$bench_dir/gen_sarif.py" "$work/base.sarif" "$results" 1 0 0
python3 "$bench_dir/gen_sarif.py" "$work/head.sarif" "$results" 1 4 50
echo "base.sarif $(du -h "$work/base.sarif" | cut -f1), head.sarif $(du -h "$work/head.sarif" | cut -f1)"

token="bench-admin-token-0123456789"
port=$((20000 + RANDOM % 20000))
server="http://127.0.0.1:$port"

now_ms() { python3 -c 'import time;print(int(time.monotonic()*1000))'; }

# Imports one file and prints "<wall ms> <new> <fixed>"; the CLI's output is kept in the log.
import_file() {
  local file="$1" log="$2" start end
  start=$(now_ms)
  "$pmapd" import "$file" --server "$server" --token "$token" --repo-url https://git.example.test/bench \
    --branch main --commit-sha "$(basename "$file")" --format sarif >"$log"
  end=$(now_ms)
  local new fixed
  new=$(awk '/^new:/{print $2}' "$log")
  fixed=$(awk '/^fixed:/{print $2}' "$log")
  echo "$((end - start)) $new $fixed"
}

run_backend() {
  local name="$1" url="$2" data="$work/data-$1"
  mkdir -p "$data"
  PMAP_LISTEN="127.0.0.1:$port" PMAP_DATA_DIR="$data" PMAP_DATABASE_URL="$url" \
    PMAP_ADMIN_TOKEN="$token" RUST_LOG=warn "$pmapd" serve 2>"$work/server-$name.log" &
  server_pid=$!
  for _ in $(seq 1 200); do
    curl -fs "$server/readyz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  curl -fs "$server/readyz" >/dev/null || { cat "$work/server-$name.log" >&2; exit 1; }

  read -r base_ms _ _ < <(import_file "$work/base.sarif" "$work/base-$name.txt")
  read -r head_ms new fixed < <(import_file "$work/head.sarif" "$work/head-$name.txt")
  local rss_kb
  rss_kb=$(awk '/VmHWM/{print $2}' "/proc/$server_pid/status")
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

  echo "== $name"
  cat "$work/head-$name.txt"
  echo "base import: ${base_ms} ms, head import: ${head_ms} ms, server peak RSS: $((rss_kb / 1024)) MB"
  if [ "$new" != 50 ] || [ "$fixed" != 0 ]; then
    echo "FAIL: expected 50 new and 0 fixed, got $new new and $fixed fixed" >&2
    exit 1
  fi
  results_line="$results_line$name head ${head_ms} ms / ${rss_kb} kB; "
  last_head_ms=$head_ms
  last_rss_kb=$rss_kb
}

results_line=""
run_backend sqlite "sqlite://$work/data-sqlite/pmap.db"
sqlite_head_ms=$last_head_ms
sqlite_rss_kb=$last_rss_kb
if [ -n "$pg_url" ]; then
  pg_db="pmap_bench_$$"
  psql -q "$pg_url" -c "CREATE DATABASE $pg_db" >/dev/null
  run_backend postgres "${pg_url%/*}/$pg_db"
fi

if command -v sarif >/dev/null; then
  echo "== sarif diff (sarif-tools)"
  /usr/bin/time -v sarif diff "$work/base.sarif" "$work/head.sarif" -o "$work/diff.json" \
    >/dev/null 2>"$work/sarif-time.txt" || true
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$work/sarif-time.txt")
  peer_rss_kb=$(awk -F': ' '/Maximum resident set size/{print $2}' "$work/sarif-time.txt")
  peer_ms=$(python3 -c "
p='$wall'.split(':'); s=float(p[-1])+60*float(p[-2])+(3600*float(p[-3]) if len(p)>2 else 0); print(int(s*1000))")
  echo "sarif diff: ${peer_ms} ms, peak RSS $((peer_rss_kb / 1024)) MB"
  python3 -c "print('ratio (sarif diff / pmapd head import, SQLite): time %.2fx, RSS %.2fx' % ($peer_ms / max($sqlite_head_ms, 1), $peer_rss_kb / max($sqlite_rss_kb, 1)))"
else
  echo "sarif-tools not installed (pip install sarif-tools): no peer figures"
fi
echo "summary: $results_line"
