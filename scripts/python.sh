#!/bin/sh
# Prints the Python that .venv is made with: of every CPython on PATH of the version `$1` runs
# (python3 unless PY says otherwise), the build that runs Python code fastest.
#
# Why: one version of CPython can be built two ways. Distributions' and the official container
# images' builds are optimised with profile-guided and link-time optimisation; a build from
# source with no options (as version managers make by default) is not, and runs Byline's pure-
# Python work with about a quarter more CPU (measured: benchmark 1's CPU a post, README). When
# the two stand on one PATH, the first found is not always the fast one. Only the version the
# default names is a candidate, so this never picks another version than `$1` would run.
set -u
default=${1:-python3}
probe='import os, sys; print(sys.implementation.name, "%d.%d" % sys.version_info[:2], os.path.realpath(sys.executable))'
set -- $("$default" -c "$probe" 2>/dev/null) || true
if [ "$#" -ne 3 ] || [ "$1" != cpython ]; then
  echo "$default"  # not CPython, or it did not run: let `-m venv` say what is wrong
  exit 0
fi
version=$2
best=$default
best_ms=
seen=
# A loop of object creation, attribute reads and calls: interpreter work, as most of Byline's is
# (a loop of dicts and strings spends its time in C and barely tells the builds apart); best of
# three, in CPU microseconds (steady when others share the machine, where wall-clock time is not).
bench='import time
class P:
    __slots__ = ("a", "b")
    def __init__(self, a, b): self.a = a; self.b = b
    def total(self): return self.a + self.b
def once():
    t = time.process_time(); s = 0
    for i in range(300000):
        p = P(i, s & 7); s = (s + p.total()) & 0xFFFF
    return time.process_time() - t
print(int(min(once() for _ in range(3)) * 1e6))'
old_ifs=$IFS
IFS=:
for dir in $PATH; do
  IFS=$old_ifs
  for exe in "$dir/python$version" "$dir/python3"; do
    [ -x "$exe" ] || continue
    set -- $("$exe" -c "$probe" 2>/dev/null) || continue
    [ "$#" -eq 3 ] && [ "$1" = cpython ] && [ "$2" = "$version" ] || continue
    case " $seen " in *" $3 "*) continue ;; esac
    seen="$seen $3"
    us=$("$3" -c "$bench" 2>/dev/null) || continue
    echo "scripts/python.sh: $3 ($version) took $((us / 1000)) ms of CPU for the probe" >&2
    if [ -z "$best_ms" ] || [ "$us" -lt "$best_ms" ]; then
      best=$3
      best_ms=$us
    fi
  done
done
echo "$best"
