#!/usr/bin/env bash
# fuzz.sh SECONDS [target...]: build the libFuzzer targets in build-fuzz (clang, -DPG_FUZZ=ON,
# ASan + UBSan) and run each for SECONDS, then report executions and exit status per target.
# Targets are the names of tests/fuzz/fuzz_<target>.c ("toml" or "fuzz_toml"); default: all.
# Seeds: tests/fuzz/corpus/<target>/ (committed, read-only) plus tests/fuzz/seed_<target>.sh,
# which fills build-fuzz/fuzz-corpus/<target>/ (where new inputs accumulate too).
# Findings land in build-fuzz/fuzz-artifacts/<target>/; logs in build-fuzz/fuzz-logs/.
# Env: PG_FUZZ_BUILD (default build-fuzz), PG_SHARED_DIR, PG_FUZZ_FLAGS (extra libFuzzer flags),
# PG_WERROR=ON (warnings as errors, as CI sets it through make fuzz).
set -euo pipefail

usage() { echo "usage: scripts/fuzz.sh SECONDS [target...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
secs=$1
shift
[[ $secs =~ ^[0-9]+$ ]] || usage

src=$(cd "$(dirname "$0")/.." && pwd)
build=${PG_FUZZ_BUILD:-$src/build-fuzz}
export PG_SHARED_DIR=${PG_SHARED_DIR:-$(cd "$src/.." && pwd)/shared}

if ! command -v clang >/dev/null; then
    echo "fuzz.sh: clang not found (libFuzzer needs it)" >&2
    exit 2
fi

targets=()
if [ $# -eq 0 ]; then
    for f in "$src"/tests/fuzz/fuzz_*.c; do
        [ -e "$f" ] && targets+=("$(basename "$f" .c)")
    done
else
    for t in "$@"; do
        targets+=("fuzz_${t#fuzz_}")
    done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets" >&2; exit 2; }

cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DPG_FUZZ=ON -DPG_WERROR="${PG_WERROR:-OFF}" \
      -DPG_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DPG_SHARED_DIR="$PG_SHARED_DIR" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

status=0
summary=()
for t in "${targets[@]}"; do
    name=${t#fuzz_}
    bin=$build/tests/fuzz/$t
    corpus=$build/fuzz-corpus/$name
    artifacts=$build/fuzz-artifacts/$name/
    log=$build/fuzz-logs/$name.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    if [ -x "$src/tests/fuzz/seed_$name.sh" ] && [ -z "$(ls -A "$corpus")" ]; then
        "$src/tests/fuzz/seed_$name.sh" "$corpus"
    fi
    dirs=("$corpus")
    [ -d "$src/tests/fuzz/corpus/$name" ] && dirs+=("$src/tests/fuzz/corpus/$name")
    flags=(-max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts")
    [ -f "$src/tests/fuzz/$name.dict" ] && flags+=(-dict="$src/tests/fuzz/$name.dict")
    # shellcheck disable=SC2206
    flags+=(${PG_FUZZ_FLAGS:-})
    echo "fuzz.sh: running $t for ${secs}s (log $log)"
    t0=$(date +%s)
    set +e
    "$bin" "${flags[@]}" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(($(date +%s) - t0))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ -z "$execs" ]; then
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    line="$t: ${execs:-?} executions in ${elapsed}s, exit status $rc"
    if [ $rc -ne 0 ]; then
        status=1
        line="$line (FAILED: see $log and $artifacts)"
        tail -40 "$log" >&2
    fi
    echo "fuzz.sh: $line"
    summary+=("$line")
done
echo "fuzz.sh: summary"
printf '  %s\n' "${summary[@]}"
exit $status
