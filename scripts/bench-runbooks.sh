#!/usr/bin/env bash
# End-to-end runbook benchmark: one runbook with one `http_request` to a local endpoint, events
# emitted through `POST /api/v1/events` by wrk (8 connections) for a fixed time, then waiting
# until every execution has succeeded.
#
#   scripts/bench-runbooks.sh [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--secs S] [--runs R]
#
# Needs wrk (apt-get install wrk), python3 and curl. The endpoint is a small python3 http.server
# answering 200 that counts what it receives. Prints, per backend and run, the emit rate,
# executions/s from the first event emitted to the last execution finished, and pmapd's peak
# RSS (VmHWM); then the median run. SQLite always; PostgreSQL too when --postgres names a server (a fresh database is created
# and dropped per run). Loopback only; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url=""
secs=8
runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) pg_url="$2"; shift 2 ;;
    --secs) secs="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done

cargo build --release -q -p pmapd
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')"
pmapd="$target_dir/release/pmapd"

work="$(mktemp -d)"
pids=()
dbs=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${dbs[@]}"; do
    psql "$pg_url" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

admin="bench-admin-token-0123456789"
sink_port=18190

# The endpoint: answers 200 to every POST and counts them; GET /count reads the count.
cat >"$work/sink.py" <<'EOF'
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
count = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("content-length") or 0))
        with lock:
            count += 1
        self.reply(b"{}")

    def do_GET(self):
        with lock:
            body = str(count).encode()
        self.reply(body)

    def reply(self, body):
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF

# The emitter: wrk posts one event per request, each with its own number, and prints how many
# it sent, how many were not answered 2xx, and the p99 of its requests.
cat >"$work/emit.lua" <<'EOF'
local token = os.getenv("ADMIN_TOKEN")
local counter = 0

function request()
  counter = counter + 1
  local body = string.format(
    '{"type":"integration_sync_completed","payload":{"integration_id":"bench","scans_imported":%d}}',
    counter)
  return wrk.format("POST", "/api/v1/events", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("EMITTED %d %d %.1f\n", summary.requests, summary.errors.status,
    latency:percentile(99) / 1000))
end
EOF

# The driver: waits for the endpoint to have seen every emitted event, then reads every
# execution back and checks it succeeded. Prints executions/s from the start of the emission
# to the last execution finished.
cat >"$work/drive.py" <<'EOF'
import http.client
import json
import sys
import time
from datetime import datetime

base_port, sink_port, token, runbook, total, started = sys.argv[1:7]
base_port, sink_port, total, started = int(base_port), int(sink_port), int(total), float(started)
auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}


def call(conn, method, path, body=None):
    conn.request(method, path, body=body, headers=auth)
    response = conn.getresponse()
    data = response.read()
    return response.status, data


sink = http.client.HTTPConnection("127.0.0.1", sink_port)
deadline = time.time() + 600
while int(call(sink, "GET", "/count")[1]) < total:
    if time.time() > deadline:
        sys.exit("executions did not all reach the endpoint within 600 s")
    time.sleep(0.02)

conn = http.client.HTTPConnection("127.0.0.1", base_port)
last_finished = None
succeeded = 0
cursor = None
deadline = time.time() + 60
while True:
    path = f"/api/v1/runbooks/{runbook}/executions?limit=500"
    if cursor:
        path += f"&cursor={cursor}"
    page = json.loads(call(conn, "GET", path)[1])
    for item in page["items"]:
        if item["status"] != "succeeded":
            continue
        succeeded += 1
        at = datetime.fromisoformat(item["finished_at"].replace("Z", "+00:00")).timestamp()
        last_finished = at if last_finished is None else max(last_finished, at)
    cursor = page.get("next_cursor")
    if cursor:
        continue
    if succeeded == total:
        break
    if time.time() > deadline:
        sys.exit(f"only {succeeded} of {total} executions succeeded")
    # The endpoint saw every request; the last executions are still being finished.
    time.sleep(0.05)
    succeeded, last_finished, cursor = 0, None, None

print(f"{total / (last_finished - started):.0f}")
EOF

wait_ready() {
  for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "not ready: $1" >&2; return 1
}

python3 "$work/sink.py" "$sink_port" &
pids+=("$!")
wait_ready "http://127.0.0.1:$sink_port/count"

# One run on a fresh database; prints "emit_per_s executions_per_s events emit_p99_ms
# peak_rss_mb".
bench_once() {
  local backend="$1" db_url="$2" port="$3" data="$4"
  mkdir -p "$data"
  PMAP_LISTEN="127.0.0.1:$port" PMAP_DATA_DIR="$data" PMAP_DATABASE_URL="$db_url" \
    PMAP_ADMIN_TOKEN="$admin" PMAP_EGRESS_ALLOW="127.0.0.1/32" RUST_LOG=warn \
    "$pmapd" serve >"$work/pmapd-$backend.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_ready "http://127.0.0.1:$port/readyz"
  local runbook
  runbook="$(curl -fs -X POST "http://127.0.0.1:$port/api/v1/runbooks" \
    -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench\",\"triggers\":[{\"event\":\"integration_sync_completed\"}],
         \"actions\":[{\"type\":\"http_request\",\"config\":{
           \"url\":\"http://127.0.0.1:$sink_port/hook\",\"body\":{\"n\":\"{{ scans_imported }}\"}}}]}" |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')"
  local started emitted sent total refused emit_p99 rate
  started="$(date +%s.%N)"
  emitted="$(ADMIN_TOKEN="$admin" wrk -t1 -c8 -d"${secs}s" -s "$work/emit.lua" \
    "http://127.0.0.1:$port" 2>/dev/null | awk '/^EMITTED/ {print $2, $3, $4}')"
  read -r sent refused emit_p99 <<<"$emitted"
  [ "$refused" = 0 ] || { echo "$refused events were not answered 202" >&2; return 1; }
  # wrk stops with requests in flight that the server still stores: the log says how many
  # there are (a fresh database holds only these events).
  sleep 1
  total="$(curl -fs "http://127.0.0.1:$port/api/v1/events?limit=1" -H "Authorization: Bearer $admin" |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["items"][0]["seq"])')"
  rate="$(python3 "$work/drive.py" "$port" "$sink_port" "$admin" "$runbook" "$total" "$started")"
  local rates="$(( total / secs )) $rate $total $emit_p99"
  local rss
  rss="$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rates $rss"
}

# The sink's count keeps growing across runs; each run restarts it to start from zero.
restart_sink() {
  kill "${pids[0]}" 2>/dev/null || true; wait "${pids[0]}" 2>/dev/null || true
  python3 "$work/sink.py" "$sink_port" &
  pids[0]=$!
  wait_ready "http://127.0.0.1:$sink_port/count"
}

results=()
bench_backend() {
  local backend="$1"
  local out=()
  for run in $(seq 1 "$runs"); do
    restart_sink
    local db_url data="$work/data-$backend-$run"
    if [ "$backend" = sqlite ]; then
      db_url="sqlite://$data/pmap.db"
    else
      local db="pmap_bench_$$_$run"
      psql "$pg_url" -qAt -c "CREATE DATABASE $db" >/dev/null
      dbs+=("$db")
      db_url="${pg_url%/*}/$db"
    fi
    local line
    line="$(bench_once "$backend" "$db_url" 18180 "$data")"
    echo "$backend run $run: emit/s executions/s events emit_p99_ms peak_rss_mb = $line"
    out+=("$line")
  done
  local median
  median="$(printf '%s\n' "${out[@]}" | sort -n -k2 | sed -n "$(( (runs + 1) / 2 ))p")"
  read -r emit rate total emit_p99 rss <<<"$median"
  results+=("$backend: median of $runs: ${rate} executions/s end to end ($total events at ${emit}/s, emit p99 ${emit_p99} ms), peak RSS ${rss} MB")
}

bench_backend sqlite
if [ -n "$pg_url" ]; then bench_backend postgres; fi

echo
echo "== results"
printf '%s\n' "${results[@]}"
