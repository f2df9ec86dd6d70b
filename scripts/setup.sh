#!/usr/bin/env bash
# Idempotent set-up: Debian packages (when missing), then a virtual environment in .venv with
# streamseq installed in editable mode. Safe to run again; it only does what is missing.
#   scripts/setup.sh            runtime + dev, export (onnx) and peers (WebRTC, Silero) extras
#   STREAMSEQ_EXTRAS=dev scripts/setup.sh   (a smaller install)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  libportaudio2 libsndfile1 alsa-utils libasound2-plugins
  espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  asterisk-core-sounds-en-wav asterisk-moh-opsound-wav sound-theme-freedesktop
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
EXTRAS="${STREAMSEQ_EXTRAS:-dev,export,peers}"
stamp=".venv/.streamseq-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)-$EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing streamseq[$EXTRAS] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi
