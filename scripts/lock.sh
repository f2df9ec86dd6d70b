#!/usr/bin/env bash
# Re-resolve requirements.lock: every Python package, direct and transitive, at an exact version.
#   make lock   (= bash scripts/lock.sh)
# Builds a throw-away venv from pyproject.toml (all extras), runs `streamseq doctor` and the whole
# test suite in it, and rewrites requirements.lock only if both pass. torch/torchaudio come from
# pyproject.toml's exact pair; everything else takes the newest release its ranges allow.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
tmp="$(mktemp -d /tmp/streamseq-lock.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

echo "[lock] resolving into a fresh venv ($tmp)"
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
"$tmp/venv/bin/python" -m pip install -q -e ".[dev,export,peers]"

{
  echo "# Exact versions of every Python package streamseq installs (all extras), for CPython 3.11"
  echo "# on Linux x86_64. Written by 'make lock' (scripts/lock.sh) after the tests passed with it;"
  echo "# scripts/setup.sh installs from it. Do not edit by hand."
  "$tmp/venv/bin/python" -m pip freeze --all --exclude-editable | LC_ALL=C sort -f
} > "$tmp/requirements.lock"

echo "[lock] streamseq doctor and the test suite in that venv, against the new lock"
"$tmp/venv/bin/streamseq" doctor
STREAMSEQ_LOCK_FILE="$tmp/requirements.lock" OMP_NUM_THREADS=1 "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider

mv "$tmp/requirements.lock" requirements.lock
echo "[lock] wrote requirements.lock ($(grep -c '==' requirements.lock) packages)"
