#!/usr/bin/env bash
# Installs the Bluesky PDS test harness (node_modules next to this script).
#
# Idempotent: does nothing when node_modules was built from the current package-lock.json by
# the current Node.js (the native better-sqlite3 module is tied to Node's ABI).
#
# npm 11 does not run dependencies' install scripts, so after `npm ci` the one native module
# the PDS needs, better-sqlite3, is compiled from source with `npm rebuild`. The other
# packages with install scripts need nothing: sharp loads its prebuilt binary from the
# @img/sharp-linux-x64 package, and the core-js and protobufjs scripts only print notices.
#
# Usage: install.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

command -v node >/dev/null || { echo "install.sh: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "install.sh: npm is not installed" >&2; exit 1; }

stamp="node_modules/.byline-installed"
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node -p 'process.versions.modules')"

# Two test runs starting at once in the same tree must not install over each other.
lock="${TMPDIR:-/tmp}/byline-bluesky-install-$(printf '%s' "$here" | sha256sum | cut -c1-16).lock"
exec 9>"$lock"
flock 9

if [[ "${1:-}" != "--force" && -f "$stamp" && "$(cat "$stamp")" == "$want" \
      && -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]]; then
  exit 0
fi

# Compile against the headers that come with the installed Node.js instead of downloading
# them; and make prebuild-install (better-sqlite3's first choice) skip its download of a
# prebuilt binary from outside the package registry.
node_prefix="$(dirname "$(dirname "$(node -p 'process.execPath')")")"
if [[ -z "${npm_config_nodedir:-}" && -f "$node_prefix/include/node/node_api.h" ]]; then
  export npm_config_nodedir="$node_prefix"
fi
export npm_config_build_from_source=true

rm -f "$stamp"
start=$SECONDS
npm ci --no-audit --no-fund
echo "install.sh: npm ci took $((SECONDS - start)) s" >&2
start=$SECONDS
npm rebuild better-sqlite3
echo "install.sh: npm rebuild better-sqlite3 took $((SECONDS - start)) s" >&2

node -e "new (require('better-sqlite3'))(':memory:').close()"
printf '%s\n' "$want" > "$stamp"
