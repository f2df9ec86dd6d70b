"""``streamseq doctor``: is everything outside streamseq's own code there and working?

Each check returns one :class:`Check` row: what was looked at, ``ok`` / ``warn`` / ``missing``,
and what was found or what to do. ``missing`` is only used for parts the README's commands
need; optional parts (microphone, peers for eval, the fast ONNX step, disk for training) warn.

    >>> from streamseq.apps.doctor import run_checks
    >>> [c for c in run_checks() if c.status != "ok"]      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from streamseq.debian import PACKAGE_FILES, MissingSystemFileError, locate

__all__ = ["Check", "run_checks", "CORPUS_DISK_BYTES"]

OK, WARN, MISSING = "ok", "warn", "missing"
#: Disk the shipped models' training corpus takes in the cache (4.3 h of clips + pools), rounded up.
CORPUS_DISK_BYTES = 2 * 1024**3
_PIP_HINT = "run scripts/setup.sh (installs requirements.lock into .venv)"


@dataclass(frozen=True)
class Check:
    """One row of the report."""

    component: str
    status: str  # "ok" | "warn" | "missing"
    detail: str  # what was found, or what to do about it

    @property
    def failed(self) -> bool:
        return self.status == MISSING


def _bad(required: bool) -> str:
    return MISSING if required else WARN


def check_python() -> Check:
    v = sys.version_info
    if (v.major, v.minor) == (3, 11):
        return Check("Python", OK, f"{sys.version.split()[0]} ({sys.executable})")
    return Check("Python", MISSING, f"found {v.major}.{v.minor}.{v.micro}; streamseq needs CPython 3.11: "
                 "create .venv with python3.11 (scripts/setup.sh does)")


def check_torch_pair() -> Check:
    try:
        import torch
        import torchaudio
        import torchaudio.functional as AF

        AF.resample(torch.zeros(160), 16000, 8000)  # loads torchaudio's compiled kernels
    except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
        return Check("torch + torchaudio", MISSING, f"do not load together: {type(exc).__name__}: {exc}; "
                     "torchaudio must be the build made for the installed torch (2.11.0 with 2.11.0): " + _PIP_HINT)
    base = (torch.__version__.split("+")[0], torchaudio.__version__.split("+")[0])
    if base[0] != base[1]:
        return Check("torch + torchaudio", MISSING, f"torch {torch.__version__} with torchaudio "
                     f"{torchaudio.__version__}: not a matching pair; " + _PIP_HINT)
    return Check("torch + torchaudio", OK, f"torch {torch.__version__}, torchaudio {torchaudio.__version__}, "
                 f"{torch.get_num_threads()} threads")


def check_soundfile() -> Check:
    try:
        import soundfile
    except Exception as exc:  # noqa: BLE001
        return Check("soundfile (libsndfile)", MISSING, f"{exc}; " + _PIP_HINT)
    return Check("soundfile (libsndfile)", OK, f"soundfile {soundfile.__version__}, {soundfile.__libsndfile_version__}")


def check_models() -> Check:
    from streamseq.models import load_model
    from streamseq.models.checkpoint import pretrained_names

    names = pretrained_names()
    if not names:
        return Check("shipped models", MISSING, "none found in the package; reinstall streamseq")
    try:
        for name in names:
            load_model(name)
    except Exception as exc:  # noqa: BLE001
        return Check("shipped models", MISSING, f"{exc}; reinstall streamseq")
    return Check("shipped models", OK, f"{len(names)} load: {', '.join(names)}")


def check_modules(component: str, modules: dict[str, str], required: bool, why: str) -> Check:
    """``modules`` maps distribution name -> import name."""
    try:
        found = [f"{dist} {importlib.metadata.version(dist)}" for dist in modules]
        for name in modules.values():
            importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        return Check(component, _bad(required), f"{exc}; {why}: " + _PIP_HINT)
    return Check(component, OK, ", ".join(found))


def check_package_files(key: str) -> Check:
    spec = PACKAGE_FILES[key]
    name = f"deb {spec.package}"
    try:
        path = locate(key)
    except MissingSystemFileError as exc:
        return Check(name, _bad(spec.required), str(exc))
    count = f" ({sum(1 for _ in path.rglob('*'))} files)" if path.is_dir() else ""
    return Check(name, OK, f"{spec.what}: {path}{count}")


def check_training_packages() -> Check:
    """One row for the recordings and programs of ``scripts/setup.sh --train``."""
    specs = [spec for spec in PACKAGE_FILES.values() if spec.setup == "train"]
    missing = []
    for spec in specs:
        try:
            locate(spec.key)
        except MissingSystemFileError:
            missing.append(spec.package)
    missing = sorted(set(missing))
    packages = {spec.package for spec in specs}
    if missing:
        return Check("training recordings", WARN, f"{len(missing)} of {len(packages)} Debian packages missing "
                     f"({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}); streamseq train and eval on "
                     "real recordings need them: run scripts/setup.sh --train")
    return Check("training recordings", OK, f"all {len(packages)} Debian packages of scripts/setup.sh --train")


def check_microphone() -> Check:
    from streamseq.audio.devices import import_sounddevice

    try:
        sd = import_sounddevice()
        inputs = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
    except Exception as exc:  # noqa: BLE001
        return Check("microphone (PortAudio input)", WARN, f"{exc}; streamseq mic needs it, nothing else does")
    if not inputs:
        return Check("microphone (PortAudio input)", WARN, "PortAudio works but lists no input device; "
                     "streamseq mic needs one (plug in a microphone, or use mic --input FILE)")
    return Check("microphone (PortAudio input)", OK, f"{len(inputs)} input device(s): {', '.join(inputs[:3])}")


def check_tts() -> Iterator[Check]:
    from streamseq.data.tts import ENGINES, TTSError, TTSUnavailableError, list_voices

    for engine in ENGINES:
        try:
            voices = list_voices((engine,))
        except (TTSUnavailableError, TTSError, MissingSystemFileError, OSError, subprocess.SubprocessError) as exc:
            yield Check(f"TTS {engine}", MISSING, str(exc))
            continue
        names = sorted({v.name.split("+")[0] for v in voices})
        if voices and engine == "espeak":
            yield Check(f"TTS {engine}", OK, f"{len(voices)} voice x variant combinations over {len(names)} "
                        f"accents: {', '.join(names)}")
        elif voices:
            yield Check(f"TTS {engine}", OK, f"{len(voices)} voices: {', '.join(names)}")
        else:
            yield Check(f"TTS {engine}", MISSING, "the engine runs but offers none of the voices the corpus uses")


def check_cache() -> Iterator[Check]:
    from streamseq.data.corpus import DEFAULT_CACHE

    cache = DEFAULT_CACHE
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache, prefix=".doctor-"):
            pass
    except OSError as exc:
        yield Check("cache folder", MISSING, f"{cache} is not writable ({exc}); set STREAMSEQ_CACHE to a "
                    "writable folder")
        return
    yield Check("cache folder", OK, f"{cache} is writable")
    free = shutil.disk_usage(cache).free
    need = CORPUS_DISK_BYTES
    detail = (f"{free / 1024**3:.1f} GB free in {cache}; the shipped models' training corpus needs about "
              f"{need / 1024**3:.0f} GB")
    if free < need:
        yield Check("disk for the training corpus", WARN, detail + ": free some space or set STREAMSEQ_CACHE")
    else:
        yield Check("disk for the training corpus", OK, detail)


def run_checks() -> list[Check]:
    """Every check, in report order; a check that crashes is reported as its own failure."""
    steps: list[Callable[[], Check | Iterator[Check]]] = [
        check_python, check_torch_pair, check_soundfile, check_models,
        lambda: check_modules("onnxruntime (fast step)", {"onnx": "onnx", "onnxruntime": "onnxruntime"}, False,
                              "Sessions fall back to the eager step, about 2.5x slower"),
        lambda: check_modules("peers (eval)", {"webrtcvad-wheels": "webrtcvad", "silero-vad": "silero_vad",
                                               "ten-vad": "ten_vad", "pocketsphinx": "pocketsphinx"},
                              False, "streamseq eval compares against them: the VADs, PocketSphinx for digits "
                                     "(TEN VAD also needs Debian's libc++1)"),
        *[(lambda k=k: check_package_files(k)) for k, spec in PACKAGE_FILES.items() if spec.setup == "base"],
        check_training_packages, check_microphone, check_tts, check_cache,
    ]
    out: list[Check] = []
    for step in steps:
        try:
            result = step()
            out.extend([result] if isinstance(result, Check) else list(result))
        except Exception as exc:  # noqa: BLE001 - the report must finish
            name = getattr(step, "__name__", "check")
            out.append(Check(name, MISSING, f"check crashed: {type(exc).__name__}: {exc}"))
    return out


def env_summary() -> str:
    """One line naming the interpreter and the platform, for the report's title."""
    return f"streamseq doctor: {sys.executable} on {os.uname().sysname} {os.uname().machine}, in {Path.cwd()}"
