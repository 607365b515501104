#!/usr/bin/env bash
# /metrics of the demo exporter against nginx serving the same bytes as a static file, side by
# side in one run, both on loopback, loaded with `wrk -t2 -c100`. Prints requests/s and p99 of
# each (2xx responses only), their ratio, the same with gzip, CPU time per scrape and the
# exporter's idle RSS before and after. Nothing here passes or fails on timing: the output is
# the figure. CI does not run it.
#
#   benches/scrape.sh                  # 10 s per run, 2 rounds
#   DURATION=30 ROUNDS=3 benches/scrape.sh
#
# Needs wrk and nginx (Debian: wrk, nginx-light), curl and python3; run as root or as a user
# nginx can start as.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-2}"
CONNECTIONS=100
THREADS=2

for tool in wrk nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required (apt-get install wrk nginx-light curl python3)" >&2; exit 1; }
done

cargo build --release --quiet
BIN=target/release/entra-authmethods-exporter

WORK="$(mktemp -d)"
# nginx workers run as www-data (or nobody): they must be able to read the files, or every
# answer is a fast 403.
chmod 0755 "$WORK"
EXPORTER_PID=""
NGINX_PID=""
cleanup() {
  [ -n "$EXPORTER_PID" ] && kill "$EXPORTER_PID" 2>/dev/null || true
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# User plus system CPU time of processes, in clock ticks (fields 14 and 15 of stat).
cpu_ticks() { local total=0; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); }

# --- the exporter on its demo tenant -------------------------------------------------------
"$BIN" --demo --web.listen-address=127.0.0.1:0 --log.format=json 2>"$WORK/exporter.log" &
EXPORTER_PID=$!
for _ in $(seq 1 200); do
  ADDRESS="$(grep -o '"message":"listening"[^}]*"address":"[^"]*"\|"address":"[^"]*"[^}]*"message":"listening"' "$WORK/exporter.log" | grep -o '"address":"[^"]*"' | head -1 | cut -d'"' -f4 || true)"
  [ -n "$ADDRESS" ] && break
  sleep 0.1
done
[ -n "${ADDRESS:-}" ] || { echo "the exporter did not start:" >&2; cat "$WORK/exporter.log" >&2; exit 1; }
EXPORTER="http://$ADDRESS/metrics"
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDRESS/readyz")" = 200 ]; do sleep 0.2; done
sleep 5 # let the first polls' buffers settle before measuring "idle"
RSS_BEFORE="$(rss_kib "$EXPORTER_PID")"

# --- nginx serving one scrape of it --------------------------------------------------------
mkdir -m 0755 "$WORK/www"
curl -s -o "$WORK/www/metrics" "$EXPORTER"
gzip -k -9 "$WORK/www/metrics"
chmod 0644 "$WORK/www/metrics" "$WORK/www/metrics.gz"
NGINX_PORT="$(free_port)"
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user www-data;"
cat >"$WORK/nginx.conf" <<EOF
$USER_LINE
worker_processes $THREADS;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/body;
  proxy_temp_path $WORK/proxy;
  fastcgi_temp_path $WORK/fastcgi;
  uwsgi_temp_path $WORK/uwsgi;
  scgi_temp_path $WORK/scgi;
  default_type "text/plain; version=0.0.4; charset=utf-8";
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    gzip_static on;
    gzip_vary on;
  }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
NGINX="http://127.0.0.1:$NGINX_PORT/metrics"
for _ in $(seq 1 50); do curl -s -o /dev/null "$NGINX" && break; sleep 0.1; done
STATUS="$(curl -s -o "$WORK/from-nginx" -w '%{http_code}' "$NGINX")"
[ "$STATUS" = 200 ] || { echo "nginx answers $STATUS, not 200 (are $WORK/www and the file readable by its workers?)" >&2; exit 1; }
cmp -s "$WORK/from-nginx" "$WORK/www/metrics" || { echo "nginx serves other bytes than the exporter's scrape" >&2; exit 1; }
curl -s -H 'Accept-Encoding: gzip' "$NGINX" | gunzip | cmp -s - "$WORK/www/metrics" \
  || { echo "nginx's gzip answer is not the same text" >&2; exit 1; }
curl -s -H 'Accept-Encoding: gzip' "$EXPORTER" | gunzip >"$WORK/exporter-gunzipped"
[ "$(grep -c '^entra_' "$WORK/exporter-gunzipped")" -gt 100 ] || { echo "the exporter's gzip answer does not decode" >&2; exit 1; }

size() { curl -s -o /dev/null -w '%{size_download}' "$@"; }
echo "body: $(size "$EXPORTER") bytes identity, $(size -H 'Accept-Encoding: gzip' "$EXPORTER") gzip (exporter);" \
     "$(size "$NGINX") identity, $(size -H 'Accept-Encoding: gzip' "$NGINX") gzip -9 (nginx gzip_static)"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, rounds alternate nginx and the exporter; only 2xx responses count"
echo

# Runs wrk; prints "rps_2xx p99_ms requests_2xx".
load() {
  local url="$1"; shift
  local out
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url")"
  python3 - "$DURATION" <<PY
import re, sys
out = """$out"""
duration = float(sys.argv[1])
requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
m = re.search(r"requests in ([\d.]+)(\w+)", out)
seconds = float(m.group(1)) * {"s": 1, "m": 60, "ms": 0.001}.get(m.group(2), 1)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
ok = requests - (int(bad.group(1)) if bad else 0)
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
print(f"{ok / seconds:.0f} {p99_ms:.2f} {ok}")
PY
}

report() { # label, nginx-args..., --, exporter
  local label="$1" encoding="$2"
  local headers=()
  [ "$encoding" = gzip ] && headers=(-H 'Accept-Encoding: gzip')
  for round in $(seq 1 "$ROUNDS"); do
    local n0 e0 n e n1 e1
    n0="$(cpu_ticks $(nginx_pids))"
    read -r n_rps n_p99 n_ok <<<"$(load "$NGINX" "${headers[@]}")"
    n1="$(cpu_ticks $(nginx_pids))"
    e0="$(cpu_ticks "$EXPORTER_PID")"
    read -r e_rps e_p99 e_ok <<<"$(load "$EXPORTER" "${headers[@]}")"
    e1="$(cpu_ticks "$EXPORTER_PID")"
    python3 - <<PY
n_rps, n_p99, n_ok, e_rps, e_p99, e_ok = $n_rps, $n_p99, $n_ok, $e_rps, $e_p99, $e_ok
n_cpu = ($n1 - $n0) * 10_000 / max(n_ok, 1)   # clock ticks are 10 ms; per request in us
e_cpu = ($e1 - $e0) * 10_000 / max(e_ok, 1)
print(f"$label round $round: nginx {n_rps:>6} req/s p99 {n_p99:7.2f} ms {n_cpu:5.1f} us CPU/req | "
      f"exporter {e_rps:>6} req/s p99 {e_p99:7.2f} ms {e_cpu:5.1f} us CPU/scrape | "
      f"ratio {e_rps / n_rps:.2f}x throughput, {e_p99 / n_p99:.2f}x p99")
PY
  done
}

report identity identity
report gzip gzip

sleep 5
echo
echo "exporter idle RSS: $RSS_BEFORE KiB before the load, $(rss_kib "$EXPORTER_PID") KiB 5 s after it"
