#!/usr/bin/env bash
# loyaltyd set-up on Debian 12, as root: installs the missing Debian packages,
# builds (Release) into build/, then runs the engine or the test suite.
#
#   bash scripts/setup.sh run     # install, build, start loyaltyd on the example program
#   bash scripts/setup.sh test    # install, build, run the whole test suite (ctest)
#   bash scripts/setup.sh build   # install and build only
set -euo pipefail

mode="${1:-build}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LOYALTY_BUILD_DIR:-$root/build}"
jobs="${LOYALTY_JOBS:-2}"

packages=(build-essential cmake pkg-config libcaf-dev libasio-dev liblmdb-dev lmdb-utils
          libmsgpack-cxx-dev catch2 libbenchmark-dev libtoml11-dev libcli11-dev libssl-dev openssl)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
  else
    echo "setup: all Debian packages present"
  fi
}

build_all() {
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
  cmake --build "$build" -j"$jobs"
}

case "$mode" in
  build)
    install_missing
    build_all
    ;;
  run)
    install_missing
    build_all
    shift || true
    exec "$build/io/loyaltyd" --config "$root/config/loyaltyd.toml" "$@"
    ;;
  test)
    install_missing
    build_all
    cd "$build"
    ctest --output-on-failure -j"$jobs" --timeout 600
    ;;
  *)
    echo "usage: scripts/setup.sh [build|run|test]" >&2
    exit 2
    ;;
esac
