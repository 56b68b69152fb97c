#!/usr/bin/env bash
# Open-loop latency of a single node, with the engine's own share of it
# (docs/PERFORMANCE.md, "Issue 18, third session: where the p99 at half load goes").
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/latency.sh DIR [options]

Starts ./build/io/loyaltyd on the data directory DIR/data (config/loyaltyd.toml
with the retail program, port 7700, metrics on 127.0.0.1:9464), enrolls the
members if DIR is new, runs a closed-loop warm-up, then an open loop at RATE,
and prints the load generator's latency next to the engine's share of it: the
fraction of member answers within 1, 2.5, 5, 10, 25 and 50 ms during the open
loop (loyaltyd_member_answer_seconds, read before and after). Stops the engine.
Build first (bash scripts/setup.sh build); the engine and the load generator
run on the same machine.

Options:
  --members N   members drawn from, uniformly (default 1000000)
  --rate R      open-loop operations per second (default 26500)
  --warm S      closed-loop warm-up seconds (default 20)
  --duration S  open-loop seconds (default 20)
  --mix M       operation mix (default earn=90,redeem=10)
  --set K=V     set the engine setting K (a key of [engine] in config/loyaltyd.toml) to V; repeatable
  -h, --help    this text
EOF
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
DIR=$1; shift
MEMBERS=1000000 RATE=26500 WARM=20 DUR=20 MIX=earn=90,redeem=10
SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --members) MEMBERS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --warm) WARM=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --mix) MIX=$2; shift 2 ;;
    --set) SETS+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "latency.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
LG=./build/loadgen/loyalty-loadgen
[ -x ./build/io/loyaltyd ] && [ -x $LG ] || { echo "latency.sh: build first (bash scripts/setup.sh build)" >&2; exit 2; }
export LOYALTY_KEY=${LOYALTY_KEY:-example-admin-key-change-me}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
NEW=0; [ -d "$DIR/data" ] || NEW=1
sed -e "s#^data_dir *=.*#data_dir = \"$DIR/data\"#" -e "s#^listen_port *=.*#listen_port = 7700#" \
    -e "s#^program *=.*#program = \"$PWD/config/examples/retail.toml\"#" \
    -e "s@^# metrics_port = 9464@metrics_port = 9464@" config/loyaltyd.toml > "$DIR/loyaltyd.toml"
for kv in "${SETS[@]}"; do
  k=${kv%%=*}; v=${kv#*=}
  grep -q "^$k *=" "$DIR/loyaltyd.toml" || { echo "latency.sh: no setting $k in config/loyaltyd.toml" >&2; exit 2; }
  sed -i "s@^$k *=.*@$k = $v@" "$DIR/loyaltyd.toml"
done
./build/io/loyaltyd --config "$DIR/loyaltyd.toml" > "$DIR/engine.log" 2>&1 &
EPID=$!
trap 'kill $EPID 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do grep -q "listening" "$DIR/engine.log" && break; sleep 0.1; done
grep -q "listening" "$DIR/engine.log" || { echo "latency.sh: the engine did not start; see $DIR/engine.log" >&2; exit 1; }
if [ $NEW = 1 ]; then
  echo "enrolling $MEMBERS members"
  $LG --port 7700 --members "$MEMBERS" --duration 1 --mix earn=100 --seed 1 > "$DIR/enroll.txt"
fi
echo "warm-up: $WARM s closed loop"
$LG --port 7700 --members "$MEMBERS" --skip-enroll --duration "$WARM" --seed 2 --mix "$MIX" | grep -E '^  achieved'
curl -sf localhost:9464/metrics > "$DIR/metrics.before"
echo "open loop: $RATE/s for $DUR s"
$LG --port 7700 --members "$MEMBERS" --skip-enroll --mode open --rate "$RATE" --duration "$DUR" --seed 33 \
    --mix "$MIX" | grep -E '^  latency|^  achieved'
curl -sf localhost:9464/metrics > "$DIR/metrics.after"
python3 - "$DIR/metrics.before" "$DIR/metrics.after" <<'PY'
import re, sys
def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(r'loyaltyd_member_answer_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out
a, b = buckets(sys.argv[1]), buckets(sys.argv[2])
n = b["+Inf"] - a.get("+Inf", 0)
shares = " ".join("<=%gms %.2f%%" % (float(le) * 1000, 100.0 * (b[le] - a.get(le, 0)) / max(n, 1))
                  for le in ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05"))
print("  engine share  %d member answers: %s" % (n, shares))
PY
kill $EPID; wait $EPID 2>/dev/null || true
trap - EXIT
