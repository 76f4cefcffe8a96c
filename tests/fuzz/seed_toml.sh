#!/usr/bin/env bash
# seed_toml.sh DIR: fill DIR with the toml-test cases (valid and invalid) as fuzzing seeds.
# They are read from the shared corpus at fuzz time, never committed.
set -euo pipefail
dir=${1:?usage: seed_toml.sh DIR}
shared=${PG_SHARED_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/../shared}
src=$shared/toml-test
if [ ! -d "$src/valid" ]; then
    echo "seed_toml.sh: no toml-test corpus at $src; fuzzing from committed seeds only" >&2
    exit 0
fi
mkdir -p "$dir"
n=0
while IFS= read -r -d '' f; do
    rel=${f#"$src"/}
    cp "$f" "$dir/tt_${rel//\//_}"
    n=$((n + 1))
done < <(find "$src" -name '*.toml' -print0)
echo "seed_toml.sh: $n seeds from $src"
