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
    "PackageFiles", "PACKAGE_FILES", "FESTIVAL_VOICE_KEYS", "FESTIVAL_TRAIN_VOICE_KEYS", "MissingSystemFileError",
    "locate", "package_files", "install_command",
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
    PackageFiles("libespeak-ng", "libespeak-ng1", "*-linux-gnu/libespeak-ng.so.1",
                 "espeak-ng library (word timing of the digits corpus)", "/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1"),
    PackageFiles("flite", "flite", "/usr/bin/flite", "flite TTS program", "/usr/bin/flite"),
    PackageFiles("festival", "festival", "/usr/bin/text2wave", "festival TTS program", "/usr/bin/text2wave"),
    PackageFiles("festvox-kallpc16k", "festvox-kallpc16k", "/usr/share/festival/voices/*",
                 "festival voice kal_diphone", "/usr/share/festival/voices/english/kal_diphone"),
    PackageFiles("festvox-kdlpc16k", "festvox-kdlpc16k", "/usr/share/festival/voices/*",
                 "festival voice ked_diphone", "/usr/share/festival/voices/english/ked_diphone"),
    PackageFiles("festvox-us-slt-hts", "festvox-us-slt-hts", "/usr/share/festival/voices/*",
                 "festival voice cmu_us_slt_arctic_hts", "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
    PackageFiles("chromium", "chromium", "/usr/bin/chromium", "Chromium, headless (the serve page test)",
                 "/usr/bin/chromium", required=False),
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
        ("warzone2100-voices", "warzone2100-data", "*/warzone2100/base.wz", "game voice lines, radio-processed "
         "(zip archive)", "/usr/share/games/warzone2100/base.wz"),
        ("codec2-speech", "codec2-examples", "*/codec2/wav/*.wav", "speech samples, some over HF radio",
         "/usr/share/codec2/wav"),
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
        ("openttd-openmsx", "openttd-openmsx", "*/openmsx/*.mid", "game music (MIDI)",
         "/usr/share/games/openttd/baseset/openmsx"),
        ("planetblupi-midi", "planetblupi-music-midi", "*.mid", "game music (MIDI)", "/usr/share/planetblupi/music"),
        ("freedoom-music", "freedoom", "*/doom/freedoom*.wad", "game music (MIDI lumps of WAD archives)",
         "/usr/share/games/doom"),
        ("pingus-music", "pingus-data", "*/pingus/data/music/*", "game music (tracker modules)",
         "/usr/share/games/pingus/data/music"),
        ("heroes-music", "heroes-sound-tracks", "*/heroes/mod/*", "game music (tracker modules)",
         "/usr/share/games/heroes/mod"),
        ("ri-li-music", "ri-li-data", "*/Ri-li/Sounds/*", "game music (tracker modules) and effects",
         "/usr/share/games/ri-li/Ri-li/Sounds"),
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
        ("fluidsynth", "fluidsynth", "/usr/bin/fluidsynth", "fluidsynth (renders MIDI music)", "/usr/bin/fluidsynth"),
        ("openmpt123", "openmpt123", "/usr/bin/openmpt123", "openmpt123 (renders tracker music)",
         "/usr/bin/openmpt123"),
        ("soundfont-fluid", "fluid-soundfont-gm", "*/FluidR3_GM.sf2", "General MIDI soundfont FluidR3",
         "/usr/share/sounds/sf2/FluidR3_GM.sf2"),
        ("soundfont-musescore", "musescore-general-soundfont", "*/MuseScore_General_Full.sf3",
         "General MIDI soundfont MuseScore General", "/usr/share/sounds/sf3/MuseScore_General_Full.sf3"),
        ("soundfont-timgm6mb", "timgm6mb-soundfont", "*/TimGM6mb.sf2", "General MIDI soundfont TimGM6mb",
         "/usr/share/sounds/sf2/TimGM6mb.sf2"),
        ("libc++", "libc++1-14", "*-linux-gnu/libc++.so.1", "C++ runtime of the TEN VAD peer",
         "/usr/lib/x86_64-linux-gnu/libc++.so.1"),
    )),
)}

#: The festival voices the corpus speaks with (entries of :data:`PACKAGE_FILES`).
FESTIVAL_VOICE_KEYS = ("festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts")

# Festival voices in other languages (training corpora only: scripts/setup.sh --train), and the
# language files the Indian voices load, which Debian only recommends (setup.sh installs none).
# They run in festival's own interpreter, which also reports where the pauses are.
PACKAGE_FILES["festival-interpreter"] = PackageFiles(
    "festival-interpreter", "festival", "/usr/bin/festival", "festival Scheme interpreter", "/usr/bin/festival")
PACKAGE_FILES.update({p.key: p for p in (
    PackageFiles(key, key, pattern, what, expected, required=False, setup="train")
    for key, pattern, what, expected in (
        ("festvox-ca-ona-hts", "/usr/share/festival/voices/*", "festival Catalan voice upc_ca_ona_hts",
         "/usr/share/festival/voices/catalan/upc_ca_ona_hts"),
        ("festvox-czech-dita", "/usr/share/festival/voices/*", "festival Czech voice czech_dita",
         "/usr/share/festival/voices/czech/czech_dita"),
        ("festvox-suopuhe-lj", "/usr/share/festival/voices/*", "festival Finnish voice suo_fi_lj_diphone",
         "/usr/share/festival/voices/finnish/suo_fi_lj_diphone"),
        ("festvox-italp16k", "/usr/share/festival/voices/*", "festival Italian voice lp_diphone",
         "/usr/share/festival/voices/italian/lp_diphone"),
        ("festvox-ru", "/usr/share/festival/voices/*", "festival Russian voice msu_ru_nsh_clunits",
         "/usr/share/festival/voices/russian/msu_ru_nsh_clunits"),
        ("festvox-hi-nsk", "/usr/share/festival/voices/*", "festival Hindi voice hindi_NSK_diphone",
         "/usr/share/festival/voices/hindi/hindi_NSK_diphone"),
        ("festvox-mr-nsk", "/usr/share/festival/voices/*", "festival Marathi voice marathi_NSK_diphone",
         "/usr/share/festival/voices/marathi/marathi_NSK_diphone"),
        ("festvox-te-nsk", "/usr/share/festival/voices/*", "festival Telugu voice telugu_NSK_diphone",
         "/usr/share/festival/voices/telugu/telugu_NSK_diphone"),
        ("festival-hi", "*/hindi_scm/*", "festival Hindi language files", "/usr/share/festival/hindi_scm"),
        ("festival-mr", "*/marathi_scm/*", "festival Marathi language files", "/usr/share/festival/marathi_scm"),
        ("festival-te", "*/telugu_scm/*", "festival Telugu language files", "/usr/share/festival/telugu_scm"),
    ))})
#: The festival voices training corpora also speak with (``setup="train"`` entries of :data:`PACKAGE_FILES`).
FESTIVAL_TRAIN_VOICE_KEYS = ("festvox-ca-ona-hts", "festvox-czech-dita", "festvox-hi-nsk", "festvox-italp16k",
                             "festvox-mr-nsk", "festvox-ru", "festvox-suopuhe-lj", "festvox-te-nsk")


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
