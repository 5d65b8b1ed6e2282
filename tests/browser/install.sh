#!/usr/bin/env bash
# Installs Chromium from Debian for the sign-in page tests (tests/browser), which drive it with
# Playwright's `executable_path`: `playwright install` downloads its own browser from outside
# the package mirrors, which this setup does not allow.
#
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (or sudo) otherwise.
set -euo pipefail

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
