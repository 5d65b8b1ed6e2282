#!/usr/bin/env bash
# Installs the npm client libraries the client tests drive (megalodon; masto, the library of Elk and Phanpy), next to this script.
# Idempotent: does nothing when node_modules was built from the current package-lock.json.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v npm >/dev/null || { echo "install.sh: npm is not installed" >&2; exit 1; }
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"

# Two test runs starting at once in the same tree must not install over each other.
exec 9>"${TMPDIR:-/tmp}/byline-client-tests-install-$(printf '%s' "$here" | sha256sum | cut -c1-16).lock"
flock 9
if [[ ! -f "$here/node_modules/.byline-installed" || "$(cat "$here/node_modules/.byline-installed")" != "$want" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
  echo "$want" > "$here/node_modules/.byline-installed"
fi
