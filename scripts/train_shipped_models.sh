#!/usr/bin/env bash
# Reproduce every model shipped in streamseq/pretrained/ (fixed seeds; same data and budget).
# The corpus is built by streamseq.data on first use (TTS, the Debian recordings of
# scripts/setup.sh --train, mixing) and cached in $STREAMSEQ_CACHE (default ~/.cache/streamseq);
# the best epoch is picked on its real-recordings validation split. Usage: scripts/train_shipped_models.sh [NAME...]
# With DRY_RUN=1 it prints each training command instead of running it (a test checks them against
# the train_config every shipped checkpoint records).
# Each run uses one thread, so two invocations can share a 2-core machine (make models does).
# Digits models (digits-uni, digits-uni-d10, digits-bi) train on 12 h of the digits corpus (TTS voices and
# the asterisk digit recordings; built by streamseq.tasks.digits.data on first use, about 30 min on one
# core), with the best epoch picked on its validation split of unseen voices.
set -euo pipefail
cd "$(dirname "$0")/.."
ST=.venv/bin/streamseq
COMMON=(--epochs 40 --threads 1 --seed 0 --data-seed 1234 --train-hours 4 --valid-hours 0.3 --real-hours 0.5 --select-split real --hidden-size 64 --num-layers 2 --quiet)
DIGITS=(--task digits --select-split valid --real-hours 0 --train-hours 12 --valid-hours 0.3 --data-seed 1234 --seed 0
        --threads 1 --hidden-size 96 --num-layers 2 --epochs 40 --max-frames 300 --lr 0.004 --warmup-steps 200 --normalization running --quiet)
run() {  # the command, or its words on one line with DRY_RUN set
  if [[ -n "${DRY_RUN:-}" ]]; then echo "$@"; else "$@"; fi
}
train() {  # name, extra flags...
  local name=$1; shift
  echo "== $name"
  run "$ST" train "${COMMON[@]}" "$@" --out "runs/$name" --install-as "streamseq/pretrained/$name.pt"
}
train_digits() {  # name, extra flags...
  local name=$1; shift
  echo "== $name"
  run "$ST" train "${DIGITS[@]}" "$@" --out "runs/$name" --install-as "streamseq/pretrained/$name.pt"
}
names=("${@:-vad-uni vad-bi vad-uni-d5 vad-uni-d10 vad-uni-d20 vad-uni-d50 digits-uni digits-uni-d10 digits-bi}")
for name in ${names[*]}; do
  case "$name" in
    vad-uni) train vad-uni --kind uni --normalization running ;;
    vad-bi) train vad-bi --kind bi --normalization running ;;
    vad-uni-d*) train "$name" --kind uni --output-delay "${name#vad-uni-d}" --normalization running ;;
    digits-uni) train_digits digits-uni --kind uni ;;
    digits-bi) train_digits digits-bi --kind bi ;;
    digits-uni-d*) train_digits "$name" --kind uni --output-delay "${name#digits-uni-d}" ;;
    *) echo "unknown model $name" >&2; exit 2 ;;
  esac
done
