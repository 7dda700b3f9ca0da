#!/usr/bin/env bash
# Ledger-roll cost (issue 5, item 1): a fresh release `stratalog standalone` with a 4 KiB roll
# size gets N batches of 5,000 bytes, one per request, so every batch closes a ledger and
# opens the next. Prints rolls/s per tenth of the run (it must not fall as ledgers
# accumulate), RSS and peak RSS, and the data dir size. Usage: bench/rolls.sh [N]
# Needs: cargo build --release, and the test venv (bash tests/deps/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-25000}
bin=target/release/stratalog
py=target/test-deps/venv/bin/python
dir=$(mktemp -d)
kafka=127.0.0.1:19192
http=127.0.0.1:17170
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -x "$py" ] || { echo "install the test clients first: bash tests/deps/install.sh" >&2; exit 1; }
$bin standalone --data-dir "$dir/data" --kafka-listen $kafka --http-listen $http \
  --ledger-roll-bytes 4096 2>"$dir/server.log" &
server=$!
until curl -sf "http://$http/readyz" >/dev/null; do
  kill -0 $server 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  sleep 0.2
done
"$py" - "$kafka" "$n" <<'PY'
import sys, time
from kafka import KafkaProducer
bootstrap, n = sys.argv[1], int(sys.argv[2])
p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, batch_size=8192,
                  api_version=(2, 8))
value = b"x" * 5000
step = max(n // 10, 1)
t0 = t = time.time()
rates = []
for i in range(n):
    p.send("rolls", value).get(timeout=30)
    if (i + 1) % step == 0:
        now = time.time()
        rates.append(round(step / (now - t)))
        t = now
        print(f"  {i + 1} rolls, {rates[-1]} rolls/s over the last {step}", flush=True)
print(f"rolls/s per tenth: {rates}; {n} rolls in {time.time() - t0:.1f} s")
PY
awk '/^VmRSS|^VmHWM/ {printf "%s %.1f MiB  ", $1, $2/1024} END {print ""}' /proc/$server/status
echo "data dir: $(du -sh "$dir/data" | cut -f1) for $((n * 5000 / 1000000)) MB of record values"
du -sh "$dir"/data/* | sed 's/^/  /'
