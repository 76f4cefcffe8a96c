#!/usr/bin/env bash
# install-ui-deps.sh: what the profile viewer page (/debug/pprof/ui/) and its browser test need,
# only what is missing. Idempotent: a second run with everything present does nothing.
#   viewer   speedscope (npm, pinned) into third_party/speedscope/ -- the static release bundle
#            profgate serves from <pprof.path>/ui/speedscope/ (installed by `make install`)
#   test     the viewer, plus Debian's chromium and playwright-core (npm, pinned) into
#            third_party/ui-test/ for tests/integration/ui_browser.sh
# Usage: scripts/install-ui-deps.sh [viewer|test]   (default: viewer)
# Nothing under third_party/ is committed (third_party/.gitignore).
set -euo pipefail

want=${1:-viewer}
SPEEDSCOPE_VERSION=1.25.0
PLAYWRIGHT_VERSION=1.65.1

root=$(cd "$(dirname "$0")/.." && pwd)
tp=$root/third_party

case "$want" in
viewer | test) ;;
*)
    echo "usage: $0 [viewer|test]" >&2
    exit 2
    ;;
esac

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi

# npm_pkg DIR NAME VERSION: NAME@VERSION under DIR/node_modules, unless already there.
npm_pkg()
{
    local dir=$1 name=$2 version=$3 have
    have=$(node -p "require('$dir/node_modules/$name/package.json').version" 2>/dev/null || true)
    [ "$have" = "$version" ] && return 0
    if ! command -v npm >/dev/null; then
        echo "install-ui-deps: installing Debian's npm"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
    fi
    echo "install-ui-deps: npm install $name@$version into ${dir#"$root"/}"
    mkdir -p "$dir"
    # --no-save: no package.json of ours to keep; the pin lives in this script.
    npm install --prefix "$dir" --no-save --no-audit --no-fund --ignore-scripts \
        --loglevel=error "$name@$version"
}

npm_pkg "$tp/speedscope" speedscope "$SPEEDSCOPE_VERSION"

if [ "$want" = test ]; then
    if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
        echo "install-ui-deps: installing Debian's chromium"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends chromium
    fi
    npm_pkg "$tp/ui-test" playwright-core "$PLAYWRIGHT_VERSION"
fi
