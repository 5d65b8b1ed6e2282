#!/usr/bin/env bash
# Installs what the browser tests (tests/browser) need: axe-core from npm (injected into each
# page for its accessibility check), and Chromium from Debian, which the tests drive with
# Playwright's `executable_path`: `playwright install` downloads its own browser from outside
# the package mirrors, which this setup does not allow.
#
# Idempotent: does nothing when both are there. Chromium needs root (or sudo) to install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [[ ! -f "$here/node_modules/.byline-installed" || "$(cat "$here/node_modules/.byline-installed")" != "$want" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
  echo "$want" > "$here/node_modules/.byline-installed"
fi

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install.sh: run as root or install sudo" >&2; exit 1; }
  as_root=(sudo)
fi

# Two test runs starting at once must not run apt over each other.
exec 9>"${TMPDIR:-/tmp}/byline-chromium-install.lock"
flock 9
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi

start=$SECONDS
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
echo "install.sh: chromium installed in $((SECONDS - start)) s" >&2
/usr/bin/chromium --version
