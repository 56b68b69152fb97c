#!/usr/bin/env bash
# loyaltyd set-up on Debian 12, as root: installs the missing Debian packages,
# builds (Release) into build/, then runs the engine or the test suite.
#
#   bash scripts/setup.sh run     # install, build, start loyaltyd on the example program
#   bash scripts/setup.sh test    # install, build, run the whole test suite (ctest), then a
#                                 # short run of each fuzz target (clang, into build-fuzz/)
#   bash scripts/setup.sh build   # install and build only
set -euo pipefail

mode="${1:-build}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LOYALTY_BUILD_DIR:-$root/build}"
jobs="${LOYALTY_JOBS:-2}"

packages=(build-essential cmake pkg-config libcaf-dev libasio-dev liblmdb-dev lmdb-utils
          libmsgpack-cxx-dev catch2 libbenchmark-dev libtoml11-dev libcli11-dev
          libssl-dev openssl libraft-dev libuv1-dev clang libclang-rt-14-dev
          libcurl4-openssl-dev)

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

# The libFuzzer targets (docs/OPERATIONS.md, "Fuzzing"): built by clang into
# build-fuzz (only they and the libraries they need), then each run for
# LOYALTY_FUZZ_SECONDS over a copy of the committed corpus, so that nothing is
# written into tests/. A crash, a hang (an input over 10 s), a leak or a
# broken invariant stops libFuzzer with an error, and this script with it.
fuzz_short() {
  local fuzz_build="${LOYALTY_FUZZ_BUILD_DIR:-$root/build-fuzz}"
  local seconds="${LOYALTY_FUZZ_SECONDS:-30}"
  CC=clang CXX=clang++ cmake -S "$root" -B "$fuzz_build" -DCMAKE_BUILD_TYPE=Release \
    -DLOYALTY_FUZZ=ON -DLOYALTY_BUILD_BENCH=OFF
  cmake --build "$fuzz_build" --target frame_fuzz engine_fuzz -j"$jobs"
  for target in frame engine; do
    local work="$fuzz_build/fuzz-run/$target"
    rm -rf "$work"
    mkdir -p "$work/corpus"
    cp "$root/tests/fuzz/corpus/$target/"* "$work/corpus/"
    echo "setup: fuzzing ${target}_fuzz for ${seconds} s"
    "$fuzz_build/tests/fuzz/${target}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -dict="$root/tests/fuzz/request.dict" -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus"
  done
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
    fuzz_short
    ;;
  *)
    echo "usage: scripts/setup.sh [build|run|test]" >&2
    exit 2
    ;;
esac
