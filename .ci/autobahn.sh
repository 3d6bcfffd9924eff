#!/usr/bin/env bash
# Set up Autobahn|Testsuite (wstest, Python 2.7 only) for tests/autobahn/test_autobahn.py.
#
# Creates .ci/autobahn-venv (gitignored; reused when it already has wstest, so reruns take
# no time): a small Python 3 venv holding virtualenv<20.22 (the last line that can still
# create Python 2 environments), which then makes a Python 2.7 env with
# autobahntestsuite==25.10.1 (every dependency pinned: Twisted 19.10.0, autobahn 0.10.9).
# Without a Python 2.7 interpreter it prints why and exits 0: the test then skips itself.
#
#   bash .ci/autobahn.sh            # set up (or reuse) the env
#   AUTOBAHN_PY2=/path/python2.7 bash .ci/autobahn.sh
set -euo pipefail
cd "$(dirname "$0")/.."

env_dir=.ci/autobahn-venv
tools_dir=.ci/autobahn-tools
wstest=$env_dir/bin/wstest

if [ -x "$wstest" ] && "$wstest" --help >/dev/null 2>&1; then
    echo "== autobahn: reusing $wstest"
    exit 0
fi

if [ -n "${AUTOBAHN_PY2:-}" ]; then
    candidates=("$AUTOBAHN_PY2")
else
    candidates=(python2.7 "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/2.7*/bin/python2.7)
fi
py2=""
for candidate in "${candidates[@]}"; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
        py2=$candidate
        break
    fi
done
if [ -z "$py2" ]; then
    echo "== autobahn: SKIPPED, no Python 2.7 interpreter (tried: ${candidates[*]}; set AUTOBAHN_PY2); tests/autobahn will skip"
    exit 0
fi

echo "== autobahn: Python 2.7 is $py2; building $env_dir (about 30 s)"
rm -rf "$env_dir" "$tools_dir"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! {
    python3 -m venv "$tools_dir" &&
    "$tools_dir/bin/python" -m pip install 'virtualenv<20.22' &&
    "$tools_dir/bin/python" -m virtualenv -p "$py2" "$env_dir" &&
    # `pip install`, not `pip download`: the latter crashes on py2's pip.
    "$env_dir/bin/python" -m pip install --disable-pip-version-check 'autobahntestsuite==25.10.1' &&
    "$wstest" --help
} >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -40
    echo "== autobahn: setup FAILED (log above)" >&2
    exit 1
fi
echo "== autobahn: ready: $wstest"
