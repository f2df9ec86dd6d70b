"""Audio capture sources: a live microphone (PortAudio via sounddevice) and a sound file.

Both sources hand out float32 blocks of shape ``(frames, channels)`` through the same
small interface, so a processing loop does not care where the audio comes from::

    with MicrophoneSource(device="USB", block_s=0.05) as mic:
        while (block := mic.read(timeout=1.0)) is not None:
            process(block, mic.sample_rate)

``read`` returns ``None`` on timeout and once the source has ended; check ``active``
to tell the two apart.

The microphone's PortAudio callback only copies each block into a bounded queue. If
the consumer falls behind and the queue is full, the new block is dropped and counted
(``dropped_blocks``) instead of blocking the audio thread. Blocks lost inside PortAudio
itself are reported separately (``overflows``).

``sounddevice`` is imported lazily, so ``FileSource`` works on machines without
PortAudio.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self

import numpy as np
import soundfile as sf

from streamseq.audio.devices import import_sounddevice, resolve_device

__all__ = ["FileSource", "MicrophoneSource"]

MIN_BLOCK_S = 0.005
MAX_BLOCK_S = 0.5
RECORD_SUBTYPE = "FLOAT"  # WAV subtype of ``record_to`` files: lossless for float32 blocks
_POLL_S = 0.05  # how often a blocking ``read(timeout=None)`` re-checks whether the source ended


# --------------------------------------------------------------------------- shared plumbing


def _check_block_s(block_s: float) -> float:
    """Validate the block duration in seconds."""
    if isinstance(block_s, bool) or not isinstance(block_s, (int, float)) or not math.isfinite(block_s):
        raise ValueError(f"block_s must be a number of seconds, got {block_s!r}")
    if not MIN_BLOCK_S <= block_s <= MAX_BLOCK_S:
        raise ValueError(f"block_s must be between {MIN_BLOCK_S} and {MAX_BLOCK_S} s, got {block_s!r} s")
    return float(block_s)


def _positive_int(name: str, value: int) -> int:
    """Validate a count/rate that must be an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _Recorder:
    """Appends float32 blocks to a WAV file as they arrive (``record_to``)."""

    def __init__(self, path: Path, sample_rate: int, channels: int) -> None:
        self._file = sf.SoundFile(
            str(path), mode="w", samplerate=sample_rate, channels=channels, format="WAV", subtype=RECORD_SUBTYPE
        )

    def write(self, block: np.ndarray) -> None:
        self._file.write(block)

    def close(self) -> None:
        self._file.close()


class _Source:
    """Context-manager and recording plumbing shared by the sources."""

    _recorder: _Recorder | None = None

    def __init__(self, record_to: Path | str | None) -> None:
        self._record_to = Path(record_to) if record_to is not None else None

    def start(self) -> Self:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _open_recorder(self, sample_rate: int, channels: int) -> None:
        if self._record_to is not None:
            self._recorder = _Recorder(self._record_to, sample_rate, channels)

    def _close_recorder(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None

    def _deliver(self, block: np.ndarray) -> np.ndarray:
        """Record ``block`` (if recording) on its way to the consumer."""
        if self._recorder is not None:
            self._recorder.write(block)
        return block


# --------------------------------------------------------------------------- microphone


class MicrophoneSource(_Source):
    """Live capture from a PortAudio input device in float32 blocks of ``block_s`` seconds.

    Args:
        device: index, case-insensitive name substring, or None for the default input.
        block_s: block duration in seconds (0.005-0.5); each block is ``round(block_s * rate)`` frames.
        sample_rate: capture rate in Hz; None uses the device's default rate.
        channels: number of input channels to capture.
        queue_blocks: capacity (in blocks) of the queue between the audio callback and ``read``;
            when it is full, new blocks are dropped and counted in ``dropped_blocks``.
        record_to: optional WAV path; every block returned by ``read`` is appended to it
            (so the file replays exactly what the consumer saw, without dropped blocks).

    Use as a context manager, or call ``start``/``stop``. After ``stop``, ``read`` returns
    the blocks still queued, then None.
    """

    def __init__(
        self,
        device: str | int | None = None,
        block_s: float = 0.05,
        sample_rate: int | None = None,
        channels: int = 1,
        queue_blocks: int = 64,
        record_to: Path | str | None = None,
    ) -> None:
        super().__init__(record_to)
        self._device_spec = device
        self._block_s = _check_block_s(block_s)
        self._requested_rate = None if sample_rate is None else _positive_int("sample_rate (Hz)", sample_rate)
        self._channels = _positive_int("channels", channels)
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=_positive_int("queue_blocks", queue_blocks))
        self._stream: Any = None
        self._sample_rate: int | None = None
        self._block_frames: int | None = None
        self._started = False
        self._stopped = threading.Event()
        self._overflows = 0
        self._dropped = 0
        self._frames_captured = 0

    # -- lifecycle

    def start(self) -> Self:
        """Open the device and start capturing (idempotent while running)."""
        if self._stream is not None:
            return self
        sd = import_sounddevice()
        index, name, rate = self._choose_device(sd)
        block_frames = max(1, round(self._block_s * rate))
        self._open_recorder(rate, self._channels)
        try:
            stream = sd.InputStream(
                device=index, samplerate=rate, blocksize=block_frames, channels=self._channels,
                dtype="float32", callback=self._callback,
            )
        except sd.PortAudioError as exc:
            self._close_recorder()
            raise RuntimeError(
                f"Could not open input device {name!r} at {rate} Hz with {self._channels} channel(s): {exc}"
            ) from exc
        self._stopped.clear()
        self._sample_rate, self._block_frames, self._stream = rate, block_frames, stream
        self._started = True
        stream.start()
        return self

    def _choose_device(self, sd: ModuleType) -> tuple[int | None, str, int]:
        """(PortAudio index or None for default, device name, rate in Hz) after checking channels."""
        index = resolve_device(self._device_spec)
        info = sd.query_devices(index, "input")
        if self._channels > info["max_input_channels"]:
            raise ValueError(
                f"Device {info['name']!r} has {info['max_input_channels']} input channel(s); "
                f"{self._channels} were requested"
            )
        rate = self._requested_rate or int(round(info["default_samplerate"]))
        return index, str(info["name"]), rate

    def stop(self) -> None:
        """Stop and close the stream and any recording; queued blocks stay readable."""
        self._stopped.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        self._close_recorder()

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: copy the block into the queue; never block, never raise."""
        self._frames_captured += frames
        if status.input_overflow:
            self._overflows += 1
        if self._queue.full():
            self._dropped += 1
            return
        try:
            self._queue.put_nowait(indata.copy())
        except queue.Full:  # the consumer cannot shrink the queue, so this is only a safety net
            self._dropped += 1

    # -- consuming

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """Next float32 block, shape (block_frames, channels); None after ``timeout`` seconds or once stopped."""
        if not self._started:
            raise RuntimeError("MicrophoneSource.read() called before start() (or outside its with-block)")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return self._deliver(self._queue.get_nowait())
            except queue.Empty:
                pass
            if not self.active:
                return None
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if wait <= 0:
                return None
            try:
                return self._deliver(self._queue.get(timeout=wait))
            except queue.Empty:
                continue

    # -- properties

    @property
    def active(self) -> bool:
        """True while the stream is open and PortAudio is delivering blocks."""
        stream = self._stream
        return stream is not None and not self._stopped.is_set() and bool(stream.active)

    @property
    def sample_rate(self) -> int:
        """Capture rate in Hz (the device default if none was requested); known after ``start``."""
        if self._sample_rate is None:
            raise RuntimeError("sample_rate is known only after start() (or entering the with-block)")
        return self._sample_rate

    @property
    def channels(self) -> int:
        """Channels per block."""
        return self._channels

    @property
    def block_frames(self) -> int:
        """Frames per block; known after ``start``."""
        if self._block_frames is None:
            raise RuntimeError("block_frames is known only after start() (or entering the with-block)")
        return self._block_frames

    @property
    def overflows(self) -> int:
        """Callbacks in which PortAudio reported an input overflow (audio lost before the callback)."""
        return self._overflows

    @property
    def dropped_blocks(self) -> int:
        """Blocks dropped because the queue was full (the consumer did not keep up)."""
        return self._dropped

    @property
    def frames_captured(self) -> int:
        """Frames PortAudio delivered to the callback, including those in dropped blocks."""
        return self._frames_captured


# --------------------------------------------------------------------------- file


class FileSource(_Source):
    """Plays a sound file as float32 blocks of ``block_s`` seconds, shape (frames, file channels).

    The file is read block by block (never all at once). With ``realtime=True`` a block is
    returned only when its last sample would have been captured live, measured from
    ``start`` against a monotonic clock (so pacing does not drift); a slow consumer falls
    behind and then catches up, nothing is dropped. With ``realtime=False`` blocks come as
    fast as they are read. ``read`` returns None at end of file. The last block may be short.
    ``record_to`` appends every returned block to a WAV file.
    """

    def __init__(
        self,
        path: Path | str,
        block_s: float = 0.05,
        realtime: bool = True,
        record_to: Path | str | None = None,
    ) -> None:
        super().__init__(record_to)
        self._path = Path(path)
        self._block_s = _check_block_s(block_s)
        self._realtime = bool(realtime)
        info = sf.info(str(self._path))  # fail early, with soundfile's message, on unreadable files
        self._sample_rate = int(info.samplerate)
        self._channels = int(info.channels)
        self._block_frames = max(1, round(self._block_s * self._sample_rate))
        self._file: sf.SoundFile | None = None
        self._t0 = 0.0
        self._frames_out = 0
        self._pending: np.ndarray | None = None
        self._eof = False

    def start(self) -> Self:
        """Open the file and start the real-time clock (idempotent while open)."""
        if self._file is None and not self._eof:
            self._file = sf.SoundFile(str(self._path))
            self._open_recorder(self._sample_rate, self._channels)
            self._t0 = time.monotonic()
        return self

    def stop(self) -> None:
        """Close the file and any recording; later reads return None."""
        self._eof = True
        self._pending = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._close_recorder()

    def _next_block(self) -> np.ndarray | None:
        if self._pending is None and self._file is not None:
            block = self._file.read(self._block_frames, dtype="float32", always_2d=True)
            self._pending = block if len(block) else None
        return self._pending

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """Next block; None at end of file, when stopped, or if it is not due within ``timeout`` seconds."""
        if self._file is None:
            if self._eof:
                return None
            raise RuntimeError("FileSource.read() called before start() (or outside its with-block)")
        block = self._next_block()
        if block is None:
            self.stop()
            return None
        if self._realtime and not self._wait_until_due(len(block), timeout):
            return None
        self._pending = None
        self._frames_out += len(block)
        return self._deliver(block)

    def _wait_until_due(self, frames: int, timeout: float | None) -> bool:
        """Sleep until the block ending ``frames`` from now is due; False if that exceeds ``timeout`` s."""
        due = self._t0 + (self._frames_out + frames) / self._sample_rate
        wait = due - time.monotonic()
        if timeout is not None and wait > timeout:
            time.sleep(max(0.0, timeout))
            return False
        if wait > 0:
            time.sleep(wait)
        return True

    @property
    def active(self) -> bool:
        """True from ``start`` until end of file or ``stop``."""
        return self._file is not None

    @property
    def sample_rate(self) -> int:
        """The file's sample rate in Hz."""
        return self._sample_rate

    @property
    def channels(self) -> int:
        """The file's channel count."""
        return self._channels

    @property
    def block_frames(self) -> int:
        """Frames per block (the last block may be shorter)."""
        return self._block_frames

    @property
    def overflows(self) -> int:
        """Always 0: a file cannot overflow."""
        return 0

    @property
    def dropped_blocks(self) -> int:
        """Always 0: blocks are produced on demand, so none are dropped."""
        return 0

    @property
    def frames_captured(self) -> int:
        """Frames returned by ``read`` so far."""
        return self._frames_out
