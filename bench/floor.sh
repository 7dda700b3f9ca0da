#!/usr/bin/env bash
# Runs the performance floor of issue 2 against a fresh release `stratalog standalone`:
# each figure three times, printing every run and the median. Usage: bench/floor.sh [runs]
# Needs: cargo build --release -p stratalog -p stratalog-bench
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bin=target/release
dir=$(mktemp -d)
kafka=127.0.0.1:19092
http=127.0.0.1:17070
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT

if curl -s "http://$http/readyz" >/dev/null || (exec 3<>/dev/tcp/127.0.0.1/19092) 2>/dev/null; then
  echo "ports 19092/17070 are in use: stop whatever runs there first" >&2
  exit 1
fi
$bin/stratalog standalone --data-dir "$dir/data" --kafka-listen $kafka --http-listen $http 2>"$dir/server.log" &
server=$!
until curl -sf "http://$http/readyz" >/dev/null; do
  kill -0 $server 2>/dev/null || { echo "stratalog exited; see $dir/server.log" >&2; cat "$dir/server.log" >&2; exit 1; }
  sleep 0.2
done
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/$server/status; }
echo "idle RSS after start: $(rss) MiB"

bench() { $bin/stratalog-bench "$@" --bootstrap $kafka --json 2>/dev/null; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # name json-field command...
  local name=$1 key=$2; shift 2
  local values=()
  for i in $(seq "$runs"); do
    values+=("$(bench "$@" | field "$key")")
  done
  printf '%-44s runs: %s  median: %s\n' "$name" "${values[*]}" "$(printf '%s\n' "${values[@]}" | median)"
}

n=0
topic() { n=$((n + 1)); echo "floor-$1-$n"; }
# Latency first, on the fresh server: right after multi-GB bursts the bookie is still
# checkpointing and deleting old journals, and p99 shows that for a while (see README).
measure "produce p99 ms, 1 KiB at 10 MB/s" latency_p99_ms produce --topic "$(topic lat)" --rate 10 --duration-secs 20 --record-size 1024 --acks all
measure "produce 1 KiB acks=all MB/s" mb_per_sec produce --topic "$(topic p1k)" --records 1000000 --record-size 1024 --acks all
measure "produce 100 B acks=all MB/s" mb_per_sec produce --topic "$(topic p100)" --records 3000000 --record-size 100 --acks all
# Consume reads the 1 KiB topic written by the first produce run, from the start.
values=()
for i in $(seq "$runs"); do
  values+=("$(bench consume --topic floor-p1k-1 --records 1000000 | field mb_per_sec)")
done
printf '%-44s runs: %s  median: %s\n' "consume 1 KiB from the start MB/s" "${values[*]}" "$(printf '%s\n' "${values[@]}" | median)"
measure "offset commits/s, 1 client, sync" commits_per_sec commit --topic floor-p1k-1 --commits 5000 --sync
measure "offset commits/s, 16 clients, sync" commits_per_sec commit --topic floor-p1k-1 --commits 50000 --concurrency 16 --sync
sleep 5
echo "RSS after the runs, idle: $(rss) MiB"
