#!/usr/bin/env bash
# Installs everything the tests need (when absent) and runs all of them: ruff, mypy, pytest.
# This is the test command README.md gives; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")"

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

# The end-to-end tests run the real Alertmanager and Prometheus binaries (Debian packages).
missing=""
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing="$missing prometheus-alertmanager"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

echo "== ruff"
python3 -m ruff check .
python3 -m ruff format --check .
echo "== mypy (strict)"
python3 -m mypy
echo "== pytest"
python3 -m pytest "$@"
