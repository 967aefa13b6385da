#!/usr/bin/env bash
# Runs all the tests: ruff, mypy (strict) and pytest, from this checkout's own virtual environment.
# This is the test command README.md gives; .ci/run calls it. Arguments go to pytest
# (e.g. ./test.sh -m "not e2e" for the fast run, under a minute; ./test.sh -k outbox -x).
#
# .venv is built here, from python3, with only what pyproject.toml declares (the project, editable, and
# its test extras): a module the package imports but does not declare fails here as on a fresh machine.
# It is built again from scratch whenever pyproject.toml changes (a stamp holds the hash it was built
# from), so a dependency dropped from pyproject.toml is gone from the venv too; otherwise it is reused.
set -euo pipefail
cd "$(dirname "$0")"

# The end-to-end tests run the real Alertmanager and Prometheus binaries (Debian packages).
missing=""
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing="$missing prometheus-alertmanager"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
# The console's and the inbox's browser tests: Playwright drives Debian's chromium (its own download is
# not available everywhere); the CJK font makes Chinese render in their screenshots.
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
# The Redis outbox's tests run a real redis-server.
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$missing fonts-noto-cjk"
# Debian's own python3 makes virtual environments only with python3-venv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$missing python3-venv"
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

venv="$PWD/.venv"
stamp="$venv/.built-from"
want="$(python3 -c 'import sys; print(sys.version.split()[0])') $(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "== building .venv (no .venv yet, or pyproject.toml or python3 changed)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
  echo "$want" >"$stamp"
fi
# Everything below, and every process the tests start (sys.executable, the alertmanager-wecom console
# script, `python`), comes from the venv.
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
unset PYTHONHOME PYTHONPATH

echo "== ruff"
python -m ruff check .
python -m ruff format --check .
echo "== mypy (strict)"
python -m mypy
echo "== pytest"
# Four workers on two cores: most tests wait on loopback HTTP, subprocesses and timers, not the CPU.
# `./test.sh -n 0 …` runs them one after another (e.g. to read one test's output in order).
python -m pytest -n "${PYTEST_WORKERS:-4}" "$@"
