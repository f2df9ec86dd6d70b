"""The machine streamseq runs on: Debian data found where its package puts it, the locked Python
environment, and ``streamseq doctor``. These fail on any machine where the install steps or the
paths are wrong, not only on a fresh one."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from streamseq.debian import PACKAGE_FILES, MissingSystemFileError, PackageFiles, locate, package_files

REPO = Path(__file__).resolve().parents[1]
LOCK = Path(os.environ.get("STREAMSEQ_LOCK_FILE", REPO / "requirements.lock"))


def doctor(env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamseq.cli.main", "doctor"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "1000", **(env or {})})


# --------------------------------------------------------------------------- Debian packages


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(PACKAGE_FILES))
def test_every_system_path_belongs_to_the_package_it_names(key):
    spec = PACKAGE_FILES[key]
    if spec.setup == "train" and package_files(spec.package) is None:
        pytest.skip(f"{spec.package} is installed by scripts/setup.sh --train, not run on this machine")
    path = locate(key)
    owners = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, text=True, check=True).stdout
    packages = re.split(r"[,:\s]+", owners.split(": ")[0])
    assert spec.package in packages, f"{path} belongs to {owners!r}, not {spec.package}"
    assert os.path.realpath(path.parent) == str(path.parent), f"{path} is reached through a link"
    assert path.exists()


def test_no_system_path_is_written_into_the_code_outside_the_package_registry():
    pattern = re.compile(r"""["'](/usr/|/etc/|/var/|/opt/|/lib/)""")
    offenders = [f"{p.relative_to(REPO)}:{i}" for root in ("streamseq", "tests", "benchmarks", "examples")
                 for p in sorted((REPO / root).rglob("*.py")) if p.name not in ("debian.py", "test_environment.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == [], "locate system files with streamseq.debian.locate: " + ", ".join(offenders)


@pytest.mark.parametrize("step", ["base", "train"])
def test_setup_installs_exactly_the_packages_the_code_reads(step):
    text = (REPO / "scripts" / "setup.sh").read_text()
    name = "APT_PACKAGES" if step == "base" else "APT_TRAIN_PACKAGES"
    listed = set(re.search(name + r"=\(([^)]*)\)", text).group(1).split())
    assert listed == {spec.package for spec in PACKAGE_FILES.values() if spec.setup == step}


def test_a_missing_package_names_the_expected_path_the_package_and_the_fix():
    absent = PackageFiles("absent", "streamseq-no-such-package", "*.wav", "test recordings", "/usr/share/nothing/here")
    with pytest.raises(MissingSystemFileError) as err:
        locate(absent)
    message = str(err.value)
    assert "/usr/share/nothing/here" in message and "'streamseq-no-such-package'" in message
    assert "apt-get install -y --no-install-recommends streamseq-no-such-package" in message


def test_an_installed_package_without_the_expected_files_says_so():
    wrong = PackageFiles("wrong", "asterisk-moh-opsound-wav", "*.flac", "music as FLAC", "/usr/share/asterisk/moh")
    with pytest.raises(MissingSystemFileError, match="installed but lists no file matching"):
        locate(wrong)


@pytest.mark.slow
def test_the_asterisk_prompts_are_read_from_their_own_package_not_the_en_link():
    from streamseq.data.sources import real_speech_files

    files = real_speech_files()
    assert len(files) > 400
    owners = subprocess.run(["dpkg-query", "-S", str(files[0].path)], capture_output=True, text=True, check=True)
    assert owners.stdout.startswith("asterisk-core-sounds-en-wav:")


# --------------------------------------------------------------------------- the lock file


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[\w.+!-]+", version), f"not an exact pin: {line!r}"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_the_lock_pins_torch_and_torchaudio_as_the_pair_pyproject_names():
    pins = _lock()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"torch=={pins['torch']}" in deps and f"torchaudio=={pins['torchaudio']}" in deps
    assert pins["torch"].split("+")[0] == pins["torchaudio"].split("+")[0]


def test_the_environment_has_every_package_at_its_locked_version():
    pins = _lock()
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in importlib.metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, version in pins.items() if installed.get(name) != version}
    assert wrong == {}, "run scripts/setup.sh; (locked, installed): " + repr(wrong)


def test_every_dependency_of_streamseq_is_in_the_lock():
    pins = _lock()
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [*meta["dependencies"], *(d for extra in meta["optional-dependencies"].values() for d in extra)]
    missing = [n for n in names if re.split(r"[<>=!~\[ ]", n)[0].lower().replace("_", "-") not in pins]
    assert missing == []


# --------------------------------------------------------------------------- streamseq doctor


@pytest.mark.slow
def test_doctor_passes_here_and_reports_every_component():
    run = doctor()
    assert run.returncode == 0, run.stdout + run.stderr
    for spec in PACKAGE_FILES.values():
        assert spec.package in run.stdout or spec.setup == "train"
    assert "training recordings" in run.stdout
    for component in ("Python", "torch + torchaudio", "onnxruntime", "microphone", "TTS espeak", "TTS flite",
                      "TTS festival", "cache folder", "disk for the training corpus", "shipped models"):
        assert component in run.stdout
    assert "all required parts present" in run.stdout


@pytest.mark.slow
def test_doctor_fails_on_an_unwritable_cache_and_says_what_to_set(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = doctor({"STREAMSEQ_CACHE": str(blocker / "cache")})
    assert run.returncode == 1
    assert "STREAMSEQ_CACHE" in run.stdout and "required part(s) missing: cache folder" in run.stdout


@pytest.mark.slow
def test_doctor_without_the_debian_package_database_fails_and_names_it():
    run = doctor({"PATH": os.path.dirname(sys.executable)})  # no dpkg-query on PATH
    assert run.returncode == 1
    assert "dpkg-query is not on PATH" in run.stdout
    assert "Python" in run.stdout and "torch + torchaudio" in run.stdout  # the Python side still checked
