#!/usr/bin/env bash
# Idempotent set-up for `make demo` and `make test`; safe to run again, it only does what is missing:
#   scripts/setup.sh           (the README's two commands run this)
#   scripts/setup.sh --train   also the Debian recordings and programs that only training and
#                              evaluation on real recordings need (make models; ~3 GB download)
#   1. the Debian packages below (apt-get, when missing),
#   2. .venv with every Python package at the exact version of requirements.lock, and streamseq
#      in editable mode (again only when requirements.lock or pyproject.toml changed),
#   3. `streamseq doctor`, which checks all of it and says what to do about anything missing.
# The first run fetches a few GB of Python wheels (torch from PyPI is the CUDA build; it
# runs on the CPU here) and fills about 5 GB in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each is also an entry of streamseq/debian.py's PACKAGE_FILES (a test keeps the two lists equal).
APT_PACKAGES=(
  libportaudio2 libasound2-data
  espeak-ng espeak-ng-data libespeak-ng1 flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  asterisk-core-sounds-en-wav asterisk-moh-opsound-wav sound-theme-freedesktop
  chromium
)
# setup="train" entries of PACKAGE_FILES (recordings, ffmpeg, music renderers and soundfonts,
# TEN VAD's C++ runtime)
APT_TRAIN_PACKAGES=(
  asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav
  fillets-ng-data-cs ktuberling-data klettres-data gcin-voice hedgewars-data
  warzone2100-music planetblupi-music-ogg colobot-common-sounds supertux-data marsshooter-data
  flare-game openclonk-data hyperrogue-music asc-music lincity-ng-data ufoai-music ufoai-sound
  ri-li-data hydrogen-drumkits lmms-common sonic-pi-samples ffmpeg libc++1-14
  festvox-ca-ona-hts festvox-czech-dita festvox-suopuhe-lj festvox-italp16k festvox-ru festvox-hi-nsk festival-hi festvox-mr-nsk festival-mr festvox-te-nsk festival-te
  warzone2100-data codec2-examples openttd-openmsx planetblupi-music-midi freedoom pingus-data
  heroes-sound-tracks fluidsynth openmpt123 fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont
)
if [ "${1:-}" = "--train" ]; then
  APT_PACKAGES+=("${APT_TRAIN_PACKAGES[@]}")
elif [ -n "${1:-}" ]; then
  echo "usage: scripts/setup.sh [--train]" >&2; exit 2
fi
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
stamp=".venv/.streamseq-installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing requirements.lock into .venv (first time: a few minutes, a few GB of wheels)"
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

.venv/bin/streamseq doctor
