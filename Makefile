# Two entry points for a fresh machine (each sets itself up idempotently):
#   make demo   install, then run VAD over the bundled example recording
#   make test   install, then run the whole test suite, slow tests included (pytest -m "not slow" skips them)
# Maintenance:
#   make lint   install, then ruff and mypy (configured in pyproject.toml; CI runs it before make test)
#   make lock   re-resolve requirements.lock in a throw-away venv, run the tests there, rewrite it
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench models lock
setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/streamseq process examples/audio/meeting_snippet.flac --model vad-uni --format table

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check streamseq tests benchmarks examples scripts
	$(VENV)/bin/mypy streamseq

lock:
	bash scripts/lock.sh

bench: setup
	$(PY) benchmarks/frontend_step.py

# Reproduce the shipped models (documented in the README; fixed seeds). Installs the Debian
# recordings that only training and evaluation need first (scripts/setup.sh --train).
models: setup
	bash scripts/setup.sh --train
	bash scripts/train_shipped_models.sh vad-uni vad-uni-d5 vad-uni-d10 vad-uni-d20 digits-uni digits-uni-d10 & \
	bash scripts/train_shipped_models.sh vad-bi vad-uni-d50 digits-bi; wait
