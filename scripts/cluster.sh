#!/usr/bin/env bash
# A 3-node loyaltyd cluster on this machine, for trying the cluster out
# (docs/OPERATIONS.md, "Cluster"): writes the three settings files, starts,
# stops and shows the three processes. Uses the binaries of build/ (make them
# with `bash scripts/setup.sh build`).
#
#   bash scripts/cluster.sh start  [DIR] [options]   # default DIR: ./cluster-demo
#   bash scripts/cluster.sh status [DIR]
#   bash scripts/cluster.sh stop   [DIR]
#   bash scripts/cluster.sh --help
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LOYALTY_BUILD_DIR:-$root/build}"
loyaltyd="$build/io/loyaltyd"
loyaltyctl="$build/io/loyaltyctl"
nodes=(1 2 3)
# The example admin key of config/loyaltyd.toml (public: for trying things out only).
admin_key="example-admin-key-change-me"
admin_sha256="01e9a3db233a93d756d5611e2eb0bbc50841b440d7bc6ca6375ac9db28490812"

usage() {
  cat <<EOF
usage: bash scripts/cluster.sh start|stop|status [DIR] [options]

A cluster of 3 loyaltyd nodes on 127.0.0.1, each with its own settings file,
data directory (LMDB and Raft log), log and pid file under DIR (default
./cluster-demo): DIR/n1, DIR/n2, DIR/n3.

  start   writes DIR/nN/loyaltyd.toml unless DIR already has them (then they
          are kept: the same ports and data, whatever the options say; delete
          DIR for a new cluster), starts each loyaltyd process that does not
          run (all three, or one killed meanwhile) in the background (log
          DIR/nN/loyaltyd.log, pid DIR/nN/loyaltyd.pid), waits until each
          listens and one node leads, and prints the addresses. Exits 1 if all
          three run already, a port is taken, a node exits, or no node leads
          within --wait seconds (the nodes are then stopped).
  stop    SIGTERM to each running node (a clean stop: it answers what it read,
          flushes and exits), then waits for it; one still running after
          --wait seconds gets SIGKILL (said so). Removes the pid files.
  status  each node: running (with pid) or not, and which one leads; exit 0
          when all three run, 3 when none does, 1 otherwise.

options of start:
  --port-base N            client ports N, N+1, N+2 and Raft ports N+100,
                           N+101, N+102 (default 7411)
  --program FILE           the loyalty program (default config/examples/retail.toml)
  --election-timeout-ms MS [cluster] election_timeout_ms (default 1000)
  --heartbeat-ms MS        [cluster] heartbeat_ms (default 100)
options of start and stop:
  --wait S                 seconds to wait for a leader, or for a node to stop (default 30)

The settings have the example admin key of config/loyaltyd.toml: export
LOYALTY_KEY=$admin_key for loyaltyctl and loyalty-loadgen. Which node leads
is read from the nodes' logs (the last "cluster: leader of term" or "no longer
the leader" line since the script started it): no command reports it yet.
Binaries: \$LOYALTY_BUILD_DIR/io/loyaltyd and io/loyaltyctl (default build/).
EOF
}

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

# -- arguments ------------------------------------------------------------------------

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
case "$1" in
  -h|--help) usage; exit 0 ;;
  start|stop|status) cmd="$1"; shift ;;
  *) echo "cluster.sh: unknown command '$1'" >&2; usage >&2; exit 2 ;;
esac
dir="./cluster-demo"
if [[ $# -ge 1 && "$1" != -* ]]; then
  dir="$1"
  shift
fi
port_base=7411
program="$root/config/examples/retail.toml"
election_ms=1000
heartbeat_ms=100
wait_s=30
given_settings=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --port-base) port_base="${2:?--port-base needs a value}"; given_settings+=("$1"); shift 2 ;;
    --program) program="${2:?--program needs a value}"; given_settings+=("$1"); shift 2 ;;
    --election-timeout-ms) election_ms="${2:?--election-timeout-ms needs a value}"; given_settings+=("$1"); shift 2 ;;
    --heartbeat-ms) heartbeat_ms="${2:?--heartbeat-ms needs a value}"; given_settings+=("$1"); shift 2 ;;
    --wait) wait_s="${2:?--wait needs a value}"; shift 2 ;;
    *) echo "cluster.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$port_base" "$election_ms" "$heartbeat_ms" "$wait_s"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
((port_base >= 1024 && port_base + 102 <= 65535)) || die "--port-base: between 1024 and 65433"
if [[ "$cmd" != start && ${#given_settings[@]} -gt 0 ]]; then
  die "${given_settings[0]} is an option of start"
fi
if [[ "$cmd" == start ]]; then
  mkdir -p "$dir"
elif [[ ! -d "$dir" ]]; then
  echo "no cluster in $dir"
  [[ "$cmd" == stop ]] && exit 0
  exit 3
fi
dir="$(cd "$dir" && pwd)"

# -- one node -----------------------------------------------------------------------

node_dir() { echo "$dir/n$1"; }
settings_of() { echo "$dir/n$1/loyaltyd.toml"; }
pid_file() { echo "$dir/n$1/loyaltyd.pid"; }
log_of() { echo "$dir/n$1/loyaltyd.log"; }

# The node's pid if it runs: its pid file names a live loyaltyd started on
# this node's settings (a pid reused by another process does not count).
running_pid() {
  local f pid args
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  args="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$args" == *loyaltyd*"$(settings_of "$1")"* ]] || return 1
  echo "$pid"
}

# A setting's value as this script writes it (key = value, or key = "value").
setting() {
  sed -n "s/^$2 = \"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$(settings_of "$1")" | head -n 1
}
client_address() { echo "127.0.0.1:$(setting "$1" listen_port)"; }
# The raft address of node $1, from its peers table.
raft_address() {
  awk -v id="$1" '/^\[\[cluster.peers\]\]/ { peer = 1 } peer && $0 == "id = " id { hit = 1; next }
                  hit && /^raft = / { gsub(/^raft = "|"$/, ""); print; exit }' "$(settings_of "$1")"
}

# "leader" or "follower", from the node's log since its last start by this script.
role_of() {
  local line
  line="$(awk '/^=== cluster.sh started/ { last = "" } /cluster: (leader of term|no longer the leader)/ { last = $0 } END { print last }' "$(log_of "$1")" 2>/dev/null)"
  if [[ "$line" == *"leader of term"* ]]; then echo leader; else echo follower; fi
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_settings() {
  local i="$1" peers="" j
  for j in "${nodes[@]}"; do
    peers+="[[cluster.peers]]
id = $j
raft = \"127.0.0.1:$((port_base + 99 + j))\"
client = \"127.0.0.1:$((port_base + j - 1))\"
"
  done
  mkdir -p "$(node_dir "$i")"
  cat >"$(settings_of "$i")" <<EOF
# Node $i of the 3-node cluster written by scripts/cluster.sh (docs/OPERATIONS.md, "Cluster").
[engine]
program = "$program"
listen_host = "127.0.0.1"
listen_port = $((port_base + i - 1))
data_dir = "data"
map_gib = 4

# The example admin key of config/loyaltyd.toml (key: $admin_key): replace it before real use.
[[keys]]
id = 1
name = "example-admin"
sha256 = "$admin_sha256"
scope = "admin"

[cluster]
node_id = $i
election_timeout_ms = $election_ms
heartbeat_ms = $heartbeat_ms
$peers
EOF
}

# -- commands -------------------------------------------------------------------------

stop_nodes() {
  local i pid waited status=0
  declare -A stopping=()
  [[ -f "$(settings_of 1)" ]] || { echo "no cluster in $dir"; return 0; }
  for i in "${nodes[@]}"; do
    if pid="$(running_pid "$i")"; then
      kill -TERM "$pid" 2>/dev/null || true
      stopping[$i]="$pid"
      echo "node $i: SIGTERM to pid $pid"
    fi
    rm -f "$(pid_file "$i")"
  done
  ((${#stopping[@]} > 0)) || echo "no node of $dir was running"
  for i in "${!stopping[@]}"; do
    pid="${stopping[$i]}"
    waited=0
    while kill -0 "$pid" 2>/dev/null && ((waited < wait_s * 10)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "node $i: still running after ${wait_s} s: SIGKILL to pid $pid" >&2
      kill -KILL "$pid" 2>/dev/null || true
      status=1
    else
      echo "node $i: stopped"
    fi
  done
  return $status
}

print_nodes() {
  local i pid role
  for i in "${nodes[@]}"; do
    if pid="$(running_pid "$i")"; then
      role="$(role_of "$i")"
      printf '  node %s  %-8s pid %-7s client %-16s raft %-16s log %s\n' "$i" "$role" "$pid" "$(client_address "$i")" \
        "$(raft_address "$i")" "$(log_of "$i")"
    else
      printf '  node %s  not running%s\n' "$i" "$([[ -f "$(settings_of "$i")" ]] && echo " (settings $(settings_of "$i"))")"
    fi
  done
}

leader_node() {
  local i
  for i in "${nodes[@]}"; do
    if running_pid "$i" >/dev/null && [[ "$(role_of "$i")" == leader ]]; then
      echo "$i"
      return 0
    fi
  done
  return 1
}

start() {
  [[ -x "$loyaltyd" ]] || die "no $loyaltyd: build first (bash scripts/setup.sh build), or set LOYALTY_BUILD_DIR"
  local i pid to_start=()
  for i in "${nodes[@]}"; do
    if pid="$(running_pid "$i")"; then
      echo "node $i runs already (pid $pid)"
    else
      to_start+=("$i")
    fi
  done
  ((${#to_start[@]} > 0)) || die "all three nodes run already (bash scripts/cluster.sh stop $dir)"
  if [[ -f "$(settings_of 1)" ]]; then
    echo "reusing the settings in $dir (delete it for a new cluster)"
    [[ ${#given_settings[@]} -eq 0 ]] || echo "cluster.sh: ${given_settings[*]} ignored: the settings exist already" >&2
  else
    [[ -f "$program" ]] || die "no program file $program"
    program="$(cd "$(dirname "$program")" && pwd)/$(basename "$program")"
    for i in "${nodes[@]}"; do
      write_settings "$i"
    done
  fi
  for i in "${to_start[@]}"; do
    for port in "$(setting "$i" listen_port)" "$(raft_address "$i" | sed 's/.*://')"; do
      ! port_taken "$port" || die "port $port (node $i) is taken: another --port-base, or stop what listens there"
    done
  done
  for i in "${to_start[@]}"; do
    echo "=== cluster.sh started node $i at $(date -u +%Y-%m-%dT%H:%M:%SZ) ===" >>"$(log_of "$i")"
    # setsid: the node does not get the terminal's Ctrl-C; it stops with `stop`.
    setsid "$loyaltyd" --config "$(settings_of "$i")" >>"$(log_of "$i")" 2>&1 </dev/null &
    echo $! >"$(pid_file "$i")"
  done
  # Each listens (its log says so), and one leads; a node that exits stops the start.
  local deadline=$((SECONDS + wait_s)) leader="" listening
  while :; do
    listening=0
    for i in "${nodes[@]}"; do
      if ! running_pid "$i" >/dev/null; then
        echo "cluster.sh: node $i exited; the end of its log $(log_of "$i"):" >&2
        tail -n 20 "$(log_of "$i")" >&2
        stop_nodes >/dev/null || true
        exit 1
      fi
      awk '/^=== cluster.sh started/ { up = 0 } /^loyaltyd listening on / { up = 1 } END { exit !up }' \
        "$(log_of "$i")" && listening=$((listening + 1))
    done
    if ((listening == ${#nodes[@]})) && leader="$(leader_node)"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: no node leads after ${wait_s} s; stopping them (logs in $dir/n*/loyaltyd.log)" >&2
      stop_nodes >/dev/null || true
      exit 1
    fi
    sleep 0.1
  done
  local addresses
  addresses="$(client_address 1),$(client_address 2),$(client_address 3)"
  echo "cluster of 3 nodes in $dir: node $leader leads ($(client_address "$leader"))"
  print_nodes
  cat <<EOF
try it (any node will do: loyaltyctl and loyalty-loadgen follow not_leader to the leader):
  export LOYALTY_KEY=$admin_key
  $loyaltyctl --port $(setting 1 listen_port) enroll 1 acme
  $build/loadgen/loyalty-loadgen --connect $addresses --members 1000 --duration 10
stop it:
  bash $root/scripts/cluster.sh stop $dir
EOF
}

status() {
  local i running=0
  for i in "${nodes[@]}"; do
    running_pid "$i" >/dev/null && running=$((running + 1))
  done
  if [[ ! -f "$(settings_of 1)" ]]; then
    echo "no cluster in $dir (bash scripts/cluster.sh start $dir)"
    return 3
  fi
  local leader
  if leader="$(leader_node)"; then
    echo "cluster in $dir: $running of 3 nodes running; node $leader leads ($(client_address "$leader"))"
  else
    echo "cluster in $dir: $running of 3 nodes running; no node leads"
  fi
  print_nodes
  ((running == ${#nodes[@]})) && return 0
  ((running == 0)) && return 3
  return 1
}

case "$cmd" in
  start) start ;;
  stop) stop_nodes ;;
  status) status ;;
esac
