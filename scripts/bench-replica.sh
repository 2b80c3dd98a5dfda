#!/usr/bin/env bash
# bench-replica.sh measures one scoring replica alone on a core: a
# nats-server and the load (dagmm bench --nats-url) on CPU 0, the service
# (dagmm bench --serve-only, GOMAXPROCS=1) on CPU 1, three processes. While
# the load runs it reads the service's CPU time (/proc/PID/stat) and its
# dagmm_samples_scored_total WINDOW seconds apart, and prints the messages scored
# a second and the CPU time a message. Linux only (taskset, /proc). Run it
# from anywhere:
#
#	scripts/bench-replica.sh [--host-models]
#
# Environment:
#   RATE      messages a second the load offers (default 200000)
#   HOSTS     hosts the samples come from (default 100000)
#   WINDOW    the measured window, in seconds (default 5)
#   MODEL     the model (default out/demo/model.json, from make demo)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
RATE=${RATE:-200000}
HOSTS=${HOSTS:-100000}
WINDOW=${WINDOW:-5}
MODEL=${MODEL:-out/demo/model.json}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/dagmm" ./cmd/dagmm
go build -o "$tmp/nats-server" github.com/nats-io/nats-server/v2
port=$((4300 + RANDOM % 500))
taskset -c 0 "$tmp/nats-server" -a 127.0.0.1 -p "$port" >"$tmp/nats.log" 2>&1 &
pids+=($!)
sleep 0.5
taskset -c 1 env GOMAXPROCS=1 "$tmp/dagmm" bench --model "$MODEL" --serve-only \
	--serve-nats-url "nats://127.0.0.1:$port" --hosts "$HOSTS" "$@" >"$tmp/service.log" 2>&1 &
svc=$!
pids+=($svc)
for _ in $(seq 600); do grep -q "serving until" "$tmp/service.log" && break; sleep 0.2; done
http=$(grep -o "HTTP [^,]*" "$tmp/service.log" | cut -d' ' -f2)
if [ -z "$http" ]; then
	cat "$tmp/service.log" >&2
	exit 1
fi
taskset -c 0 env GOMAXPROCS=1 "$tmp/dagmm" bench --model "$MODEL" --nats-url "nats://127.0.0.1:$port" \
	--http-url "$http" --modes nats-single --hosts "$HOSTS" --single-rate "$RATE" \
	--duration "$((WINDOW + 8))s" --warm-up >"$tmp/load.log" 2>&1 &
load=$!
for _ in $(seq 600); do grep -q "warm-up:" "$tmp/load.log" && break; sleep 0.2; done
sleep 3
scored() { curl -s "$http/metrics" | awk '/^dagmm_samples_scored_total\{source="nats"\}/ {print $2}'; }
cpu() { awk '{print $14 + $15}' "/proc/$svc/stat"; }
c1=$(scored)
t1=$(cpu)
sleep "$WINDOW"
t2=$(cpu)
c2=$(scored)
wait "$load"
grep "samples:" "$tmp/load.log"
awk -v c1="$c1" -v c2="$c2" -v t1="$t1" -v t2="$t2" -v tck="$(getconf CLK_TCK)" -v w="$WINDOW" 'BEGIN {
	n = c2 - c1; cpu = (t2 - t1) / tck
	printf "service: %d messages scored in %d s (%.0f/s), CPU %.2f s (%.0f%% of its core), %.2f us a message\n", n, w, n / w, cpu, 100 * cpu / w, cpu / n * 1e6
}'
