"""Where Debian packages put the files streamseq reads and runs.

Every recording, voice, program and config file the project uses from the system is found
from its own package's file list (``dpkg-query -L``), never from a fixed path or a link that
some other package may or may not create (``/usr/share/asterisk/sounds/en`` comes from
``asterisk-core-sounds-en``, not from ``asterisk-core-sounds-en-wav``, which holds the files).
:data:`PACKAGE_FILES` is the one list of such things; ``streamseq doctor`` checks each and the
tests check that each located path belongs to the package it names.

>>> from streamseq.debian import locate
>>> locate("asterisk-moh")                     # doctest: +SKIP
PosixPath('/usr/share/asterisk/moh')
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

__all__ = [
    "PackageFiles", "PACKAGE_FILES", "FESTIVAL_VOICE_KEYS", "MissingSystemFileError", "locate", "package_files",
    "install_command",
]


class MissingSystemFileError(FileNotFoundError):
    """A Debian package (or the file streamseq needs from it) is not installed."""


@dataclass(frozen=True)
class PackageFiles:
    """The files of Debian ``package`` whose paths match ``pattern`` (``fnmatch``, ``*`` spans ``/``).

    ``expected`` is where Debian 12 puts them (for messages only: :func:`locate` always asks
    dpkg). ``setup`` names the step that installs the package: ``"base"`` (``scripts/setup.sh``,
    for ``make demo`` / ``make test``) or ``"train"`` (``scripts/setup.sh --train``, recordings
    only training and evaluation read). ``required`` base parts make ``streamseq doctor`` fail;
    the others are warnings.
    """

    key: str
    package: str
    pattern: str
    what: str
    expected: str
    required: bool = True
    setup: str = "base"


PACKAGE_FILES: dict[str, PackageFiles] = {p.key: p for p in (
    PackageFiles("asterisk-en", "asterisk-core-sounds-en-wav", "*.wav",
                 "English prompts (real speech, training and tests)", "/usr/share/asterisk/sounds/en_US_f_Allison"),
    PackageFiles("asterisk-moh", "asterisk-moh-opsound-wav", "*.wav",
                 "music on hold (training and tests)", "/usr/share/asterisk/moh"),
    PackageFiles("freedesktop-sounds", "sound-theme-freedesktop", "*.oga",
                 "desktop sound effects (training and tests)", "/usr/share/sounds/freedesktop/stereo"),
    PackageFiles("espeak-ng", "espeak-ng", "/usr/bin/espeak-ng", "espeak-ng TTS program", "/usr/bin/espeak-ng"),
    PackageFiles("espeak-ng-variants", "espeak-ng-data", "*/espeak-ng-data/voices/!v/*",
                 "espeak-ng voice variants", "/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"),
    PackageFiles("flite", "flite", "/usr/bin/flite", "flite TTS program", "/usr/bin/flite"),
    PackageFiles("festival", "festival", "/usr/bin/text2wave", "festival TTS program", "/usr/bin/text2wave"),
    PackageFiles("festvox-kallpc16k", "festvox-kallpc16k", "/usr/share/festival/voices/*",
                 "festival voice kal_diphone", "/usr/share/festival/voices/english/kal_diphone"),
    PackageFiles("festvox-kdlpc16k", "festvox-kdlpc16k", "/usr/share/festival/voices/*",
                 "festival voice ked_diphone", "/usr/share/festival/voices/english/ked_diphone"),
    PackageFiles("festvox-us-slt-hts", "festvox-us-slt-hts", "/usr/share/festival/voices/*",
                 "festival voice cmu_us_slt_arctic_hts", "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
    PackageFiles("portaudio", "libportaudio2", "*/libportaudio.so.2",
                 "PortAudio library (streamseq mic)", "/usr/lib/x86_64-linux-gnu/libportaudio.so.2", required=False),
    PackageFiles("alsa-conf", "libasound2-data", "*/alsa/alsa.conf",
                 "ALSA configuration (the virtual microphone of the tests)", "/usr/share/alsa/alsa.conf"),
    *(PackageFiles(key, package, pattern, what, expected, required=False, setup="train")
      for key, package, pattern, what, expected in (
        # real speech
        ("asterisk-it", "asterisk-core-sounds-it-wav", "*.wav", "Italian prompts (male)",
         "/usr/share/asterisk/sounds/it_IT_m_Carlo"),
        ("asterisk-ru", "asterisk-core-sounds-ru-wav", "*.wav", "Russian prompts (female)",
         "/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU"),
        ("asterisk-it-menardi", "asterisk-prompt-it-menardi-wav", "*.wav", "Italian prompts (female)",
         "/usr/share/asterisk/sounds/it_IT_f_Menardi"),
        ("fillets-cs", "fillets-ng-data-cs", "*/cs/*.ogg", "Czech game dialogue",
         "/usr/share/games/fillets-ng/sound"),
        ("ktuberling", "ktuberling-data", "*/ktuberling/sounds/*", "words in 23 languages",
         "/usr/share/ktuberling/sounds"),
        ("klettres", "klettres-data", "*/klettres/*.ogg", "letters and syllables in 25 languages",
         "/usr/share/klettres"),
        ("gcin-voice", "gcin-voice", "*.ogg", "Mandarin syllables", "/usr/share/gcin-voice/ogg"),
        ("hedgewars-voices", "hedgewars-data", "*/Sounds/voices/*", "game voice packs (shouts)",
         "/usr/share/games/hedgewars/Data/Sounds/voices"),
        # music
        ("hedgewars-music", "hedgewars-data", "*/Data/Music/*", "game music", "/usr/share/games/hedgewars/Data/Music"),
        ("warzone2100-music", "warzone2100-music", "*.opus", "game music", "/usr/share/games/warzone2100/music"),
        ("planetblupi-music", "planetblupi-music-ogg", "*.ogg", "game music", "/usr/share/planetblupi/music"),
        ("colobot-music", "colobot-common-sounds", "*/colobot/music/*", "game music", "/usr/share/games/colobot/music"),
        ("supertux-music", "supertux-data", "*/supertux2/music/*.ogg", "game music",
         "/usr/share/games/supertux2/music"),
        ("marsshooter-music", "marsshooter-data", "*/audio/music/*", "game music",
         "/usr/share/games/marsshooter/audio/music"),
        ("flare-music", "flare-game", "*/music/*.ogg", "game music", "/usr/share/games/flare/mods/fantasycore/music"),
        ("openclonk-music", "openclonk-data", "*/Music.ocg/*.ogg", "game music",
         "/usr/share/games/openclonk/Music.ocg"),
        ("hyperrogue-music", "hyperrogue-music", "*/hyperrogue/music/*", "game music", "/usr/share/hyperrogue/music"),
        ("asc-music", "asc-music", "*/asc/music/*", "game music", "/usr/share/games/asc/music"),
        ("lincity-music", "lincity-ng-data", "*/lincity-ng/music/*", "game music",
         "/usr/share/games/lincity-ng/music/default"),
        ("ufoai-music", "ufoai-music", "*/0music.pk3", "game music (zip archive)",
         "/usr/share/games/ufoai/base/0music.pk3"),
        # effects and instrument samples
        ("hedgewars-sounds", "hedgewars-data", "*/Data/Sounds/*", "game effects",
         "/usr/share/games/hedgewars/Data/Sounds"),
        ("colobot-sounds", "colobot-common-sounds", "*/colobot/sounds/*", "game effects",
         "/usr/share/games/colobot/sounds"),
        ("supertux-sounds", "supertux-data", "*/supertux2/sounds/*", "game effects",
         "/usr/share/games/supertux2/sounds"),
        ("flare-sounds", "flare-game", "*/soundfx/*", "game effects", "/usr/share/games/flare/mods"),
        ("hyperrogue-sounds", "hyperrogue-music", "*/hyperrogue/sounds/*", "game effects",
         "/usr/share/hyperrogue/sounds"),
        ("marsshooter-sounds", "marsshooter-data", "*/audio/toon/*", "game effects",
         "/usr/share/games/marsshooter/audio/toon"),
        ("lincity-sounds", "lincity-ng-data", "*/lincity-ng/sounds/*", "game effects",
         "/usr/share/games/lincity-ng/sounds"),
        ("ufoai-sounds", "ufoai-sound", "*/0snd.pk3", "game effects (zip archive)",
         "/usr/share/games/ufoai/base/0snd.pk3"),
        ("ri-li-sounds", "ri-li-data", "*/Ri-li/Sounds/*.wav", "game effects", "/usr/share/games/ri-li/Ri-li/Sounds"),
        ("hydrogen-drumkits", "hydrogen-drumkits", "*/drumkits/*", "drum samples", "/usr/share/hydrogen/data/drumkits"),
        ("lmms-samples", "lmms-common", "*/lmms/samples/*", "instrument samples", "/usr/share/lmms/samples"),
        ("sonic-pi-samples", "sonic-pi-samples", "*/sonic-pi/samples/*", "instrument samples and loops",
         "/usr/share/sonic-pi/samples"),
        # programs and libraries
        ("ffmpeg", "ffmpeg", "/usr/bin/ffmpeg", "ffmpeg (codec augmentation)", "/usr/bin/ffmpeg"),
        ("libc++", "libc++1-14", "*-linux-gnu/libc++.so.1", "C++ runtime of the TEN VAD peer",
         "/usr/lib/x86_64-linux-gnu/libc++.so.1"),
    )),
)}

#: The festival voices the corpus speaks with (entries of :data:`PACKAGE_FILES`).
FESTIVAL_VOICE_KEYS = ("festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts")


def install_command(*packages: str) -> str:
    """The shell command that installs ``packages`` (with ``sudo`` unless running as root)."""
    sudo = "" if os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y --no-install-recommends {' '.join(packages)}"


@functools.cache
def package_files(package: str) -> tuple[str, ...] | None:
    """Every path ``dpkg-query -L package`` lists, in its order; None when the package is not installed.

    Raises :class:`MissingSystemFileError` when there is no dpkg to ask.
    """
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        raise MissingSystemFileError(
            f"cannot locate the files of Debian package '{package}': dpkg-query is not on PATH "
            "(streamseq finds system data through Debian's package database)")
    proc = subprocess.run([dpkg, "-L", package], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return tuple(line for line in proc.stdout.splitlines() if line.startswith("/") and line != "/.")


def _leaves(paths: tuple[str, ...]) -> list[str]:
    parents = {os.path.dirname(p) for p in paths}
    return [p for p in paths if p not in parents]


def locate(key: str | PackageFiles) -> Path:
    """Path of :data:`PACKAGE_FILES` entry ``key``: its one matching file, or the folder holding all of them.

    Raises :class:`MissingSystemFileError` naming the expected path, the package and the command
    that installs it when the package is missing or its files are not on disk.
    """
    spec = PACKAGE_FILES[key] if isinstance(key, str) else key
    fix = install_command(spec.package)
    listed = package_files(spec.package)
    if listed is None:
        raise MissingSystemFileError(
            f"{spec.what}: expected {spec.expected} from Debian package '{spec.package}', "
            f"which is not installed; install it with: {fix}")
    matches = [p for p in _leaves(listed) if fnmatchcase(p, spec.pattern)]
    if not matches:
        raise MissingSystemFileError(
            f"{spec.what}: Debian package '{spec.package}' is installed but lists no file matching "
            f"{spec.pattern!r} (expected {spec.expected}); this streamseq does not know this version of the package")
    path = Path(os.path.commonpath(matches)) if len(matches) > 1 else Path(matches[0])
    missing = [p for p in matches if not os.path.lexists(p)]
    if missing:
        raise MissingSystemFileError(
            f"{spec.what}: {len(missing)} of the {len(matches)} files of Debian package '{spec.package}' "
            f"under {path} are missing (e.g. {missing[0]}); reinstall it with: "
            f"{fix.replace('install -y', 'install -y --reinstall')}")
    return path
