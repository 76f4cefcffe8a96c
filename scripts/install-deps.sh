#!/usr/bin/env bash
# install-deps.sh: install what profgate needs from Debian's archive, only what is missing.
# Idempotent: a second run with everything present does nothing (no apt-get update either).
# Usage: scripts/install-deps.sh [build|test|all|bench|fuzz]   (default: all = build + test)
set -euo pipefail

want=${1:-all}

build_pkgs=(cmake make gcc pkg-config libuv1-dev node-llhttp libunwind-dev
            libprotobuf-c-dev protobuf-c-compiler zlib1g-dev)
test_pkgs=(libcmocka-dev golang-go apache2-utils curl python3 g++ strace)
bench_pkgs=(wrk nginx-light haproxy strace valgrind linux-perf)
fuzz_pkgs=(clang libclang-rt-14-dev)

case "$want" in
build) pkgs=("${build_pkgs[@]}") ;;
test | all) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
bench) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
fuzz) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
*)
    echo "usage: $0 [build|test|all|bench|fuzz]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing missing Debian packages: ${missing[*]}"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
