"""Input devices through PortAudio (sounddevice): listing, choosing, and clear errors.

``sounddevice`` is imported lazily, so importing streamseq works without PortAudio; a missing
library or no input device become errors that say how to fix them.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = [
    "NoInputDeviceError",
    "import_sounddevice",
    "PortAudioUnavailableError",
    "describe_input_devices",
    "list_input_devices",
    "pick_input_device",
    "resolve_device",
]


class PortAudioUnavailableError(RuntimeError):
    """The PortAudio shared library could not be loaded, so no microphone can be opened."""


class NoInputDeviceError(RuntimeError):
    """PortAudio works but reports no device with input channels."""


# --------------------------------------------------------------------------- devices


def import_sounddevice() -> ModuleType:
    """Import ``sounddevice``, turning a missing PortAudio library into a clear error."""
    try:
        import sounddevice
    except OSError as exc:
        raise PortAudioUnavailableError(
            "Cannot use the microphone: the PortAudio library was not found "
            f"(importing sounddevice failed with: {exc}). On Debian/Ubuntu install it with "
            "`apt-get install libportaudio2`, or read a sound file instead with --input FILE."
        ) from exc
    return sounddevice


def list_input_devices() -> list[dict[str, Any]]:
    """Input-capable PortAudio devices as dicts: index, name, max_input_channels, default_samplerate (Hz)."""
    sd = import_sounddevice()
    return [
        {
            "index": int(dev["index"]),
            "name": str(dev["name"]),
            "max_input_channels": int(dev["max_input_channels"]),
            "default_samplerate": float(dev["default_samplerate"]),
        }
        for dev in sd.query_devices()
        if dev["max_input_channels"] > 0
    ]


def describe_input_devices(devices: list[dict[str, Any]] | None = None) -> str:
    """One line per input device (index, name, channels, default rate); for errors and --list-devices."""
    devices = list_input_devices() if devices is None else devices
    if not devices:
        return "  (no input devices)"
    return "\n".join(
        f"  {d['index']:>3}: {d['name']} ({d['max_input_channels']} in, {d['default_samplerate']:g} Hz)"
        for d in devices
    )


def _no_input_error(devices_seen: int) -> NoInputDeviceError:
    return NoInputDeviceError(
        f"No audio input device found: PortAudio reports {devices_seen} device(s), none with "
        "input channels. Connect a microphone, or read a sound file with --input FILE; "
        "run with --list-devices to see what PortAudio can open."
    )


def pick_input_device(
    spec: str | int | None, devices: list[dict[str, Any]], default_input: int | None, devices_seen: int
) -> int | None:
    """Pure device-selection logic behind :func:`resolve_device` (see there); testable without PortAudio.

    ``devices`` are the input devices as from :func:`list_input_devices`, ``default_input`` is
    PortAudio's default input index (None or negative when it has none), ``devices_seen`` counts
    all PortAudio devices (for the error message).
    """
    if not devices:
        raise _no_input_error(devices_seen)
    if spec is None:
        if default_input is not None and any(d["index"] == default_input for d in devices):
            return None
        return int(devices[0]["index"])
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise TypeError(f"device must be an int index, a name substring or None, got {type(spec).__name__}: {spec!r}")
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        if any(d["index"] == index for d in devices):
            return index
        raise ValueError(
            f"Device index {index} is not an input device. Available inputs:\n{describe_input_devices(devices)}"
        )
    return _match_name(spec, devices)


def _match_name(spec: str, devices: list[dict[str, Any]]) -> int:
    """Index of the one input device whose name contains ``spec`` (case-insensitive; exact name wins)."""
    needle = spec.strip().casefold()
    exact = [d for d in devices if d["name"].casefold() == needle]
    matches = exact or [d for d in devices if needle and needle in d["name"].casefold()]
    if len(matches) == 1:
        return int(matches[0]["index"])
    if not matches:
        raise ValueError(f"No input device matches {spec!r}. Available inputs:\n{describe_input_devices(devices)}")
    raise ValueError(
        f"Device name {spec!r} is ambiguous; it matches {len(matches)} inputs. "
        f"Use an index or a longer name:\n{describe_input_devices(matches)}"
    )


def resolve_device(spec: str | int | None) -> int | None:
    """PortAudio input device index for ``spec``.

    ``spec`` is an index (int or digit string), a case-insensitive substring of the device
    name, or None for PortAudio's default input (returned as None; if PortAudio has no
    default input, the first input device's index). Raises ValueError listing the available
    inputs when nothing (or more than one device) matches, and NoInputDeviceError when
    there are no input devices at all.
    """
    sd = import_sounddevice()
    return pick_input_device(spec, list_input_devices(), _default_input_index(sd), len(sd.query_devices()))


def _default_input_index(sd: ModuleType) -> int | None:
    """PortAudio's (or ``sounddevice.default``'s) default input index; None if there is none."""
    try:
        return int(sd.query_devices(kind="input")["index"])
    except (sd.PortAudioError, ValueError):
        return None
