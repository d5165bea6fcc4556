#!/usr/bin/env bash
# Benchmarks of the long-running delivery modes, against a local ra-emulator:
#  1. `serve` under load: credentials GETs with a valid IMDSv2 token from wrk on loopback
#     (64 connections, 10 s): requests/s, p99, peak RSS of serve, CreateSession calls.
#  2. A burst of 1000 concurrent first requests (token PUT + credentials GET each) at start:
#     CreateSession calls.
#  3. `credential-process --cache`: median whole-process wall time of a cache hit.
# Needs: a release build (cargo build --release --bins), wrk (apt-get install -y wrk),
# openssl, curl, python3. Usage: bench/serve.sh [DURATION_S] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-10}
connections=${2:-64}
signer=target/release/ra-signer
emulator=target/release/ra-emulator
for bin in "$signer" "$emulator"; do
  [[ -x $bin ]] || { echo "bench: $bin is missing: cargo build --release --bins" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install -y wrk" >&2; exit 1; }

ta=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555
profile=arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000
role=arn:aws:iam::123456789012:role/ra-bench

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A throw-away PKI: root CA and a P-256 client certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=ra-bench root" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=ra-bench" -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >"$work/ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/leaf.pem" 2>/dev/null

"$emulator" --trust-anchor-ca "$work/ca.pem" --trust-anchor-arn "$ta" --profile-arn "$profile" \
  --role-arn "$role" --ready-file "$work/ready" --tls-ca-out "$work/tls.pem" \
  --log "$work/emulator.log" --exit-after 900 >/dev/null &
pids+=($!)
for _ in $(seq 200); do [[ -s $work/ready ]] && break; sleep 0.05; done
endpoint=$(head -n1 "$work/ready")
issued() { curl -s --cacert "$work/tls.pem" "$endpoint/_emulator/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issued"])'; }

identity=(--certificate "$work/leaf.pem" --private-key "$work/leaf.key")
session=(--trust-anchor-arn "$ta" --profile-arn "$profile" --role-arn "$role"
         --endpoint "$endpoint" --ca-bundle "$work/tls.pem")

# Starts serve on a free port; sets serve_pid and port.
start_serve() {
  : >"$work/serve.log"
  "$signer" serve --port 0 "${identity[@]}" "${session[@]}" ${SERVE_FLAGS:-} 2>"$work/serve.log" &
  serve_pid=$!
  pids+=("$serve_pid")
  for _ in $(seq 400); do grep -q 'listening on' "$work/serve.log" && break; sleep 0.01; done
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/serve.log" | head -n1)
  [[ -n $port ]] || { cat "$work/serve.log" >&2; exit 1; }
}

echo "== serve under load: wrk -t2 -c$connections -d${duration}s (credentials GET with a token)"
before=$(issued)
start_serve
token=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' "http://127.0.0.1:$port/latest/api/token")
url="http://127.0.0.1:$port/latest/meta-data/iam/security-credentials/ra-bench"
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "X-aws-ec2-metadata-token: $token" "$url") == 200 ]]
wrk -t2 -c"$connections" -d"${duration}s" --latency -H "X-aws-ec2-metadata-token: $token" "$url" | tee "$work/wrk.txt"
rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk.txt")
rss_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$serve_pid/status")
after=$(issued)
kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
if [[ -n ${BENCH_DEBUG:-} ]]; then cat "$work/serve.log" >&2; fi
echo "requests/s: $rps   p99: $p99   non-2xx: ${non2xx:-0}   peak RSS: $((rss_kb / 1024)).$(((rss_kb % 1024) * 10 / 1024)) MB   CreateSession calls: $((after - before))"

echo "== burst: 1000 concurrent first requests at start"
before=$(issued)
start_serve
python3 - "$port" <<'PY'
import http.client, sys, threading, collections
port = int(sys.argv[1])
n = 1000
barrier = threading.Barrier(n)
results = collections.Counter()
keys = set()
lock = threading.Lock()
def one():
    barrier.wait()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        token = c.getresponse().read().decode()
        c.request("GET", "/latest/meta-data/iam/security-credentials/ra-bench",
                  headers={"X-aws-ec2-metadata-token": token})
        r = c.getresponse()
        body = r.read()
        with lock:
            results[r.status] += 1
            if r.status == 200:
                import json
                keys.add(json.loads(body)["AccessKeyId"])
    except Exception as e:
        with lock:
            results[type(e).__name__] += 1
threads = [threading.Thread(target=one) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print("statuses:", dict(results), " distinct access keys:", len(keys))
PY
rss_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$serve_pid/status")
after=$(issued)
kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
echo "CreateSession calls: $((after - before))   peak RSS: $((rss_kb / 1024)).$(((rss_kb % 1024) * 10 / 1024)) MB"

echo "== credential-process --cache: hit wall time"
"$signer" credential-process --cache --debug "${identity[@]}" "${session[@]}" >/dev/null 2>"$work/cache.log"
if grep -q 'not available' "$work/cache.log"; then
  echo "the kernel keyring is not available here: $(cat "$work/cache.log")"
else
  before=$(issued)
  RUNS=200 python3 bench/measure.py "credential-process --cache (hit)" \
    "$signer" credential-process --cache "${identity[@]}" "${session[@]}"
  after=$(issued)
  echo "CreateSession calls during the 200 cached runs: $((after - before))"
  # The floors and the uncached run, for comparison.
  RUNS=200 python3 bench/measure.py "ra-signer version (process start floor)" "$signer" version
  RUNS=20 python3 bench/measure.py "credential-process (uncached)" \
    "$signer" credential-process "${identity[@]}" "${session[@]}"
fi
