#!/bin/sh
# TUN mode's throughput (socksify --tun), against the same transfer without it, in a network
# namespace this script makes (and deletes): 2 GiB each way per run, REPS runs (default 3).
# Needs root, socat, and a release build: cargo build --release -p socksgate
set -eu
BIN=${BIN:-target/release/socksgate}
REPS=${REPS:-3}
NS=sgbench-tun-$$
MIB=2048
TARGET=203.0.113.80
ip netns add "$NS"
trap 'ip netns pids "$NS" | xargs -r kill 2>/dev/null; ip netns del "$NS"' EXIT
ip -n "$NS" link set lo up
ip -n "$NS" addr add "$TARGET/32" dev lo
config=$(mktemp)
printf '[[listen]]\naddress = "127.0.0.1:1080"\n[log]\naccess = false\n' > "$config"
ip netns exec "$NS" "$BIN" serve -c "$config" 2>/dev/null &
ip netns exec "$NS" socat -u TCP-LISTEN:9000,bind=$TARGET,reuseaddr,fork /dev/null &
ip netns exec "$NS" socat -u OPEN:/dev/zero TCP-LISTEN:9001,bind=$TARGET,reuseaddr,fork 2>/dev/null &
sleep 1
up="dd if=/dev/zero bs=1M count=$MIB status=none | socat -u - TCP:$TARGET:9000"
down="socat -u TCP:$TARGET:9001 - 2>/dev/null | head -c $((MIB * 1048576)) > /dev/null"
# MB/s of one shell command run in the namespace, optionally under socksify --tun.
rate() {
    start=$(date +%s.%N)
    if [ "$1" = tun ]; then
        ip netns exec "$NS" "$BIN" socksify --tun -x socks5h://127.0.0.1:1080 -- sh -c "$2"
    else
        ip netns exec "$NS" sh -c "$2"
    fi
    end=$(date +%s.%N)
    echo "$start $end" | awk -v mib=$MIB '{ printf "%.0f", mib * 1.048576 / ($2 - $1) }'
}
for rep in $(seq "$REPS"); do
    echo "run $rep: up direct $(rate direct "$up") MB/s, tun $(rate tun "$up") MB/s;" \
         "down direct $(rate direct "$down") MB/s, tun $(rate tun "$down") MB/s"
done
rm -f "$config"
