#!/usr/bin/env bash
# scripts/cluster.sh as a user runs it (ctest entry cluster_script_test):
# start a 3-node cluster in a temporary directory on free ports, see one node
# lead, enroll and earn through a follower with loyaltyctl (it follows the
# leader), run the load generator at every node for a moment, refuse a
# start of the running cluster, kill the leader and start it again, stop,
# and see nothing run. Real processes; asserts no duration.
#   bash tests/cluster_script_test.sh BUILD_DIR
set -euo pipefail

build="${1:?usage: cluster_script_test.sh BUILD_DIR}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
script="$root/scripts/cluster.sh"
dir="$(mktemp -d "${TMPDIR:-/tmp}/cluster-script-test.XXXXXX")"
export LOYALTY_BUILD_DIR="$build"
export LOYALTY_KEY=example-admin-key-change-me

cleanup() {
  bash "$script" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAILED: $*" >&2
  for log in "$dir"/n*/loyaltyd.log; do
    [[ -f "$log" ]] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
}

# `status` exits $1 and says $2 (a grep pattern).
status_is() {
  local out rc=0
  out="$(bash "$script" status "$dir")" || rc=$?
  [[ $rc -eq $1 ]] || fail "status exits $rc, not $1: $out"
  grep -q "$2" <<<"$out" || fail "status does not say '$2': $out"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A base whose three client ports and three Raft ports (base+100 ..) are free.
base=""
for _ in $(seq 1 50); do
  # Below the kernel's ephemeral ports (32768 ...): probing a port there by
  # connecting to it can connect the probe to itself (a TCP self-connect),
  # and the port looks taken.
  candidate=$((20000 + RANDOM % 12000))
  ok=1
  for off in 0 1 2 100 101 102; do
    port_free $((candidate + off)) || { ok=0; break; }
  done
  if ((ok)); then base=$candidate; break; fi
done
[[ -n "$base" ]] || fail "no free ports"

out="$(bash "$script" start "$dir" --port-base "$base" --election-timeout-ms 500 --heartbeat-ms 50)" ||
  fail "start: $out"
echo "$out"
leader="$(sed -n 's/.*: node \([123]\) leads .*/\1/p' <<<"$out")"
[[ -n "$leader" ]] || fail "start named no leader"
[[ -f "$dir/n1/loyaltyd.toml" && -f "$dir/n2/loyaltyd.pid" && -f "$dir/n3/loyaltyd.log" ]] || fail "files missing"

status_is 0 "3 of 3 nodes running; node $leader leads"
[[ "$(bash "$script" status "$dir" | grep -c ' follower ')" -eq 2 ]] || fail "status shows not two followers"

# Through a follower: loyaltyctl follows not_leader to the leader.
follower=$((leader % 3 + 1))
follower_port=$((base + follower - 1))
"$build/io/loyaltyctl" --port "$follower_port" enroll 1 acme >/dev/null || fail "enroll through a follower"
"$build/io/loyaltyctl" --port "$follower_port" earn --member 1 --txn script-1 --brand acme --amount 1000 \
  --currency EUR >/dev/null || fail "earn through a follower"

addresses="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
"$build/loadgen/loyalty-loadgen" --connect "$addresses" --members 20 --connections 3 --depth 4 --duration 1 \
  --mix earn=100 --seed 5 >"$dir/loadgen.out" 2>&1 || { cat "$dir/loadgen.out" >&2; fail "loadgen"; }
grep -q "not_leader answer(s) followed" "$dir/loadgen.out" || fail "loadgen followed no not_leader"

if out="$(bash "$script" start "$dir" 2>&1)"; then fail "a start of a running cluster succeeded: $out"; fi
grep -q "all three nodes run already" <<<"$out" || fail "start of a running cluster: $out"

# The leader killed: another leads; start brings the killed node back.
kill -KILL "$(<"$dir/n$leader/loyaltyd.pid")"
status_is 1 "2 of 3 nodes running"
out="$(bash "$script" start "$dir")" || fail "start after a kill: $out"
grep -q "runs already" <<<"$out" || fail "start after a kill: $out"
status_is 0 "3 of 3 nodes running; node [123] leads"

bash "$script" stop "$dir" || fail "stop"
for i in 1 2 3; do
  [[ ! -f "$dir/n$i/loyaltyd.pid" ]] || fail "pid file of node $i left"
  grep -q "loyaltyd info: stopped" "$dir/n$i/loyaltyd.log" || fail "node $i did not stop cleanly"
done
status_is 3 "0 of 3 nodes running"
echo "cluster_script_test: passed"
