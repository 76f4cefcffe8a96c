#!/usr/bin/env bash
# bench/toml/run.sh [SIZE_BYTES] [RUNS]: generate a realistic ~1 MiB profgate config
# (gen_config.py, deterministic), build toml_bench against the parser sources with the
# release flags (-O2, as RelWithDebInfo), and report the median wall-clock time of parsing
# (and freeing) it over RUNS runs (default 201). Target: under 20 ms. Not a ctest.
set -euo pipefail
size=${1:-1048576}
runs=${2:-201}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/pg_toml_bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc=${CC:-cc}

python3 "$here/gen_config.py" "$size" > "$work/bench.toml"
"$cc" -std=c11 -D_GNU_SOURCE -O2 -g -I"$src/proxy" -o "$work/toml_bench" \
    "$here/toml_bench.c" "$src"/proxy/pg_toml.c "$src"/proxy/pg_toml_scan.c \
    "$src/proxy/pg_error.c" -lm
echo "compiler: $("$cc" --version | head -1), -O2; cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/toml_bench" "$work/bench.toml" "$runs"
