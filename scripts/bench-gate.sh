#!/usr/bin/env bash
# Gate latency benchmark: a burst of signed GitHub pull-request deliveries into `pmapd serve`,
# each answered by a commit status at a local fake SCM ("waiting for scan results"), then PR
# scan imports, each answered by a second status with the verdict.
#
#   scripts/bench-gate.sh [--deliveries N] [--imports N] [--postgres URL] [--release]
#
# Prints, per backend, the median and p99 from delivery sent to status received, the time the
# whole burst took, and the median and p99 from an import's 201 to its status at the fake SCM.
# Builds a debug pmapd unless --release (which builds only the pmapd package). Needs python3
# and the webhook corpus beside the repository. Loopback only; everything started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

deliveries=1000
imports=200
pg_url=""
profile=debug
while [ $# -gt 0 ]; do
  case "$1" in
    --deliveries) deliveries="$2"; shift 2 ;;
    --imports) imports="$2"; shift 2 ;;
    --postgres) pg_url="$2"; shift 2 ;;
    --release) profile=release; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

corpus="$(cd .. && pwd)/shared/corpus/webhooks/github/pull_request-opened.json"
[ -f "$corpus" ] || { echo "missing $corpus" >&2; exit 2; }

if [ "$profile" = release ]; then cargo build --release -q -p pmapd; else cargo build -q -p pmapd; fi
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')"
pmapd="$target_dir/$profile/pmapd"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

admin="bench-admin-token-0123456789"

run_backend() {
  local backend="$1" db_url="$2" port="$3"
  mkdir -p "$work/data-$backend"
  PMAP_LISTEN="127.0.0.1:$port" PMAP_DATA_DIR="$work/data-$backend" PMAP_DATABASE_URL="$db_url" \
    PMAP_ADMIN_TOKEN="$admin" RUST_LOG=warn "$pmapd" serve >"$work/pmapd-$backend.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  python3 - "$backend" "http://127.0.0.1:$port" "$admin" "$corpus" "$deliveries" "$imports" <<'PY'
import hashlib, hmac, json, sys, threading, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

backend, server, admin, corpus, deliveries, imports = sys.argv[1:7]
deliveries, imports = int(deliveries), int(imports)
secret = "bench-secret"

# The fake SCM: records when each commit's statuses arrive.
arrivals, lock = {}, threading.Lock()
class Fake(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_POST(self):
        now = time.monotonic()
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if "/statuses/" in self.path:
            with lock: arrivals.setdefault(self.path.rsplit("/", 1)[1], []).append(now)
        self.send_response(201); self.send_header("content-length", "2"); self.end_headers()
        self.wfile.write(b"{}")
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers()
        self.wfile.write(b"[]")
    do_PATCH = do_POST
fake = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
fake.daemon_threads = True
threading.Thread(target=fake.serve_forever, daemon=True).start()
fake_url = f"http://127.0.0.1:{fake.server_address[1]}"

def call(method, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(server + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {admin}")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items(): req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=60) as r: return json.loads(r.read() or b"null")

for _ in range(400):
    try: urllib.request.urlopen(server + "/readyz", timeout=1); break
    except Exception: time.sleep(0.05)

config = {"api_base_url": fake_url, "auth": {"token": "t"},
          "auto_scan": {"branches": ["master"], "gate": {"warn_on_new": ["medium"],
                                                        "pr_comment": False}}}
integration = call("POST", "/api/v1/integrations",
                   {"name": "bench", "vendor": "github", "secret": secret, "config": config})["id"]

template = json.load(open(corpus))
def sha(n): return hashlib.sha1(str(n).encode()).hexdigest()
def deliver(n):
    payload = json.loads(json.dumps(template))
    payload["number"] = n; payload["pull_request"]["number"] = n
    payload["pull_request"]["head"]["sha"] = sha(n)
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{server}/api/v1/webhooks/ci/github/{integration}", data=body,
        headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": f"bench-{n}",
                 "X-Hub-Signature-256": sig, "Content-Type": "application/json"})
    sent = time.monotonic()
    urllib.request.urlopen(req, timeout=60).read()
    return n, sent

def wait_for(keys, count, limit=600):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        with lock:
            if all(len(arrivals.get(k, [])) >= count for k in keys): return True
        time.sleep(0.01)
    return False

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

start = time.monotonic()
with ThreadPoolExecutor(32) as pool: sent = dict(pool.map(deliver, range(1, deliveries + 1)))
ok = wait_for([sha(n) for n in sent], 1)
burst = time.monotonic() - start
lat = [(arrivals[sha(n)][0] - t) * 1000 for n, t in sent.items() if sha(n) in arrivals]
print(f"{backend}: {deliveries} PR deliveries -> {len(lat)} statuses in {burst:.2f} s"
      f"{'' if ok else ' (INCOMPLETE)'}; delivery->status p50 {pct(lat, 50):.0f} ms, "
      f"p99 {pct(lat, 99):.0f} ms")

sarif = json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "bench"}},
    "results": [{"ruleId": "r1", "level": "error", "message": {"text": "x"},
                 "partialFingerprints": {"h": "1"},
                 "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"},
                                "region": {"startLine": 1}}}]}]}]}).encode()
repo_url = template["repository"]["html_url"]
def import_scan(n):
    query = (f"repo_url={repo_url}&branch=changes&target_branch=master&pr_number={n}"
             f"&commit_sha={sha(n)}&integration_id={integration}&tool=bench")
    call("POST", f"/api/v1/scans/import?{query}", raw=sarif)
    done = time.monotonic()
    wait_for([sha(n)], 2, limit=60)
    return (arrivals[sha(n)][1] - done) * 1000 if len(arrivals.get(sha(n), [])) > 1 else None

with ThreadPoolExecutor(4) as pool:
    lat = [x for x in pool.map(import_scan, range(1, imports + 1)) if x is not None]
print(f"{backend}: {imports} PR scan imports -> {len(lat)} statuses; import->status "
      f"p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms")
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_backend sqlite "sqlite://$work/data-sqlite/pmap.db" $((20000 + RANDOM % 10000))
if [ -n "$pg_url" ]; then
  db="pmap_gate_bench_$$"
  psql "$pg_url" -qAt -c "CREATE DATABASE $db" >/dev/null
  run_backend postgres "${pg_url%/*}/$db" $((30000 + RANDOM % 10000))
  psql "$pg_url" -qAt -c "DROP DATABASE $db WITH (FORCE)" >/dev/null || true
fi
