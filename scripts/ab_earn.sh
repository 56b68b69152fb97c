#!/usr/bin/env bash
# Earn throughput of two loyaltyd builds in one run (docs/PERFORMANCE.md, "Issue 19"):
# A = an older build (A_SRC: its source tree, with build/io/loyaltyd built in Release),
# B = this tree's build. Both engines run at once, each on its own data directory with
# its own settings and `retail` example program; one closed-loop earn run against A,
# then one against B, alternating. Prints each pair's answers per second.
#   A_SRC=/path/to/old/checkout bash scripts/ab_earn.sh      # MEMBERS, RUNS, DUR, W to change
set -euo pipefail
cd "$(dirname "$0")/.."
: "${A_SRC:?set A_SRC to a checkout of the older build (with build/io/loyaltyd)}"
export LOYALTY_KEY=example-admin-key-change-me
LG=./build/loadgen/loyalty-loadgen
W=${W:-/tmp/ab_earn}; rm -rf "$W"; mkdir -p "$W/a" "$W/b"
MEMBERS=${MEMBERS:-1000000}
for x in a b; do
  port=$([ $x = a ] && echo 7710 || echo 7700)
  src=$([ $x = a ] && echo "$A_SRC" || pwd)  # each build reads its own example files
  sed -e "s#^data_dir *=.*#data_dir = \"$W/$x/data\"#" -e "s#^listen_port *=.*#listen_port = $port#" \
      -e "s#^program *=.*#program = \"$src/config/examples/retail.toml\"#" "$src/config/loyaltyd.toml" > "$W/$x/loyaltyd.toml"
done
"$A_SRC/build/io/loyaltyd" --config "$W/a/loyaltyd.toml" > "$W/a/log" 2>&1 & APID=$!
./build/io/loyaltyd --config "$W/b/loyaltyd.toml" > "$W/b/log" 2>&1 & BPID=$!
trap 'kill $APID $BPID 2>/dev/null || true' EXIT
sleep 2
echo "enrolling $MEMBERS members on each engine"
$LG --port 7710 --members "$MEMBERS" --duration 1 --mix earn=100 --seed 1 > "$W/enroll-a.txt"
$LG --port 7700 --members "$MEMBERS" --duration 1 --mix earn=100 --seed 1 > "$W/enroll-b.txt"
for r in ${RUNS:-1 2 3 4 5}; do
  $LG --port 7710 --members "$MEMBERS" --skip-enroll --duration "${DUR:-20}" --mix earn=100 --seed $((10 + r)) > "$W/a-$r.txt"
  $LG --port 7700 --members "$MEMBERS" --skip-enroll --duration "${DUR:-20}" --mix earn=100 --seed $((10 + r)) > "$W/b-$r.txt"
  echo "run $r: A $(grep -E '^  achieved' "$W/a-$r.txt" | awk '{print $2}')  B $(grep -E '^  achieved' "$W/b-$r.txt" | awk '{print $2}')"
done
