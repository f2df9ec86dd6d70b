"""``streamseq serve``: live VAD for many WebSocket streams, all stepped by one :class:`Engine`.

Protocol (one WebSocket per stream, at ``/ws``)::

    client -> {"type": "hello", "sample_rate": 16000, "encoding": "int16" | "float32",
               "channels": 1, "decimate": 1}                          (text, first message)
    server -> {"type": "ready", "stream": id, "frame_shift_s": 0.01, ...}
    client -> binary frames: interleaved little-endian PCM, any number of whole sample frames
    server -> {"type": "probs", "frame": f, "step": k, "p": [...]}    uni speech prob. of frames f, f+k, ...
              {"type": "start", ...} {"type": "segment", ...} {"type": "bi", ...}   (see _event_json)
    client -> {"type": "end"}                                         (text: flush, then close 1000)

Data flow: a receiver task per connection decodes frames into that stream's inbox (bounded:
``max_queue_s`` of audio; ``overflow="block"`` stops reading that socket until the next tick
drains it, ``"drop"`` discards the frame and counts it). Every ``tick_s`` one tick takes every
inbox, feeds the audio to the :class:`~streamseq.streaming.engine.Engine` and steps all streams
in one batched call; each stream's outputs then go through its own
:class:`~streamseq.apps.live.LivePipeline` (Segmenter, bi model after each utterance, waits
measured in stream time) exactly as in ``streamseq mic``. Events go to a per-stream outbox that a
sender task writes to the socket, so a client that reads slowly only fills its own outbox
(closed with 4008 past ``max_pending_events``); it never stalls the tick. Per-message
compression is off: PCM hardly compresses, and inflating it cost more CPU than the model.

Close codes: 1000 end of stream; 1001 server shutting down (after the final segment is flushed);
1003 binary frame that is not whole PCM sample frames, or text where audio was expected;
1007 samples rejected (NaN, inf); 1008 bad hello, unsupported rate/encoding, message rate over
the limit, unknown path; 1009 frame over ``max_frame_bytes``; 1011 internal error in this
stream (others go on); 1013 server full (``max_streams``); 4008 client not reading events;
4408 idle for ``idle_timeout_s`` (final segment flushed first).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streamseq.apps.live import BiDecision, BlockUpdate, LiveEvent, LivePipeline, SpeechStart, TaskEvent, UniSegment
from streamseq.audio.convert import MAX_CHANNELS, to_mono_float32, validate_sample_rate
from streamseq.models.recurrent import FrameModel
from streamseq.streaming.engine import Engine
from streamseq.streaming.outputs import FrameOutputs
from streamseq.streaming.session import Session

ENCODINGS: dict[str, np.dtype] = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
HELLO_KEYS = {"type", "sample_rate", "encoding", "channels", "decimate"}


@dataclass(frozen=True)
class ServeConfig:
    """Limits and pacing of a server. Seconds unless said otherwise."""

    max_streams: int = 1000
    max_frame_bytes: int = 1 << 16
    max_messages_per_s: float = 200.0
    idle_timeout_s: float = 30.0
    tick_s: float = 0.02
    max_queue_s: float = 2.0  # audio a stream may have waiting for the next tick
    overflow: str = "block"  # "block": stop reading that socket until the tick drains; "drop": discard
    max_pending_events: int = 2000  # events waiting to be written to one client
    preroll_s: float = 0.5  # audio before a uni start that the bi model also gets

    def __post_init__(self) -> None:
        if self.overflow not in ("block", "drop"):
            raise ValueError(f"overflow must be 'block' or 'drop'; received {self.overflow!r}")
        for name in ("max_streams", "max_frame_bytes", "max_pending_events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}")
        for name in ("max_messages_per_s", "idle_timeout_s", "tick_s", "max_queue_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number of seconds; received {getattr(self, name)}")


class StreamError(Exception):
    """A stream must close with ``code`` and ``reason``; other streams are not affected."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class Hello:
    sample_rate: int
    dtype: np.dtype
    channels: int
    decimate: int


def parse_hello(message: str | bytes) -> Hello:
    """The client's first message -> :class:`Hello`, or :class:`StreamError` (1008) saying what is wrong."""
    example = '{"type": "hello", "sample_rate": 16000, "encoding": "int16", "channels": 1}'
    if not isinstance(message, str):
        raise StreamError(1008, f"expected a JSON hello as the first (text) message, e.g. {example}; received binary")
    try:
        hello = json.loads(message)
    except json.JSONDecodeError:
        raise StreamError(1008, f"hello is not JSON; expected e.g. {example}") from None
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        raise StreamError(1008, f'hello must be a JSON object with "type": "hello", e.g. {example}')
    unknown = sorted(set(hello) - HELLO_KEYS)
    if unknown:
        raise StreamError(1008, f"unknown hello fields {unknown}; expected {sorted(HELLO_KEYS)}")
    try:
        rate = validate_sample_rate(hello.get("sample_rate"))
    except ValueError as exc:
        raise StreamError(1008, f"unsupported sample rate: {exc}") from None
    encoding = hello.get("encoding", "int16")
    if encoding not in ENCODINGS:
        raise StreamError(1008, f"encoding must be one of {sorted(ENCODINGS)}; received {encoding!r}")
    channels, decimate = hello.get("channels", 1), hello.get("decimate", 1)
    if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= MAX_CHANNELS:
        raise StreamError(1008, f"channels must be a whole number from 1 to {MAX_CHANNELS}; received {channels!r}")
    if not isinstance(decimate, int) or isinstance(decimate, bool) or not 1 <= decimate <= 100:
        raise StreamError(1008, f"decimate must be a whole number of frames from 1 to 100; received {decimate!r}")
    return Hello(rate, ENCODINGS[encoding], channels, decimate)


def decode_frame(data: bytes, hello: Hello) -> np.ndarray:
    """A binary frame -> ``(n,)`` finite float32 mono samples, or :class:`StreamError` (1003, 1007)."""
    width = hello.dtype.itemsize * hello.channels
    if not data or len(data) % width:
        raise StreamError(1003, f"binary frames must hold whole sample frames of {width} bytes "
                                f"({hello.channels} x {hello.dtype.name}); received {len(data)} bytes")
    samples = np.frombuffer(data, hello.dtype)  # (n * channels,) interleaved
    if hello.dtype.kind == "i":
        samples = samples * np.float32(1 / 32768)  # int16 PCM -> float32 in [-1, 1)
    if hello.channels > 1:
        samples = samples.reshape(-1, hello.channels).mean(axis=1, dtype=np.float32)  # (n,)
    try:
        return to_mono_float32(np.array(samples, np.float32), what="audio frame")  # a writable copy, checked
    except ValueError as exc:
        raise StreamError(1007, f"audio rejected: {exc}") from None


class _EngineSession(Session):
    """The :class:`Session` a LivePipeline drives, backed by one stream of the shared Engine: the
    tick feeds the Engine and steps all streams, then hands each stream its outputs in ``ready``."""

    def __init__(self, engine: Engine) -> None:  # no Engine of its own: the server's is shared
        self._shared, self.stream_id = engine, engine.open()
        n, shift = engine.model.config.n_outputs, engine.frame_shift_s
        self.ready = FrameOutputs.empty(0, n, shift)

    def accept(self, samples: Any, *, sample_rate: int, channels_first: bool | None = None) -> FrameOutputs:
        return self.ready  # the tick already fed this block to the engine

    def finish(self) -> FrameOutputs:
        return self._shared.close(self.stream_id)


@dataclass
class _Stream:
    hello: Hello
    pipeline: LivePipeline
    session: _EngineSession
    connection: ServerConnection
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)  # dict events, then one (code, reason)
    inbox: list[np.ndarray] = field(default_factory=list)
    queued: int = 0  # samples in inbox
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    last_seen: float = field(default_factory=time.monotonic)
    ending: tuple[int, str] | None = None  # close code and reason once the tick has flushed it
    closed: bool = False
    tokens: float = 0.0  # message-rate bucket
    done: asyncio.Event = field(default_factory=asyncio.Event)


class StreamServer:
    """All streams of one worker process; see the module docstring."""

    def __init__(self, uni: FrameModel, bi: FrameModel | None = None, config: ServeConfig = ServeConfig(),
                 names: tuple[str, str | None] = ("uni", None)) -> None:
        self.uni, self.bi, self.config, self.names = uni, bi, config, names
        LivePipeline(uni, bi)  # the checks (task, uni/bi pair) fail here, at start-up, not per stream
        self.engine = Engine(uni, threads=1)
        self.streams: dict[int, _Stream] = {}
        self.page = resources.files("streamseq.apps").joinpath("serve_page.html").read_bytes()
        self.ticks, self.streams_total, self.dropped_samples_s = 0, 0, 0.0
        self.tick_times: deque[float] = deque(maxlen=2000)
        self.closes: dict[int, int] = {}
        self._stopping = False

    # ------------------------------------------------------------------ HTTP
    def _respond(self, connection: ServerConnection, status: HTTPStatus, body: bytes | str, kind: str) -> Response:
        response = connection.respond(status, "")
        body = body.encode() if isinstance(body, str) else body
        response.headers = Headers({"Content-Type": kind, "Content-Length": str(len(body)),
                                    "Cache-Control": "no-store"})
        response.body = body
        return response

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?")[0]
        if path == "/ws":
            return None
        if path == "/":
            return self._respond(connection, HTTPStatus.OK, self.page, "text/html; charset=utf-8")
        if path == "/healthz":
            state = "stopping" if self._stopping else "ok"
            body = json.dumps({"status": state, "streams": len(self.streams), "uni": self.names[0],
                               "bi": self.names[1]})
            return self._respond(connection, HTTPStatus.OK if state == "ok" else HTTPStatus.SERVICE_UNAVAILABLE,
                                 body, "application/json")
        if path == "/metrics":
            return self._respond(connection, HTTPStatus.OK, self.metrics_text(), "text/plain; version=0.0.4")
        return self._respond(connection, HTTPStatus.NOT_FOUND, f"no page {path}; try / /ws /healthz /metrics\n",
                             "text/plain")

    def metrics(self) -> dict[str, float]:
        times = np.array(self.tick_times) if self.tick_times else np.zeros(1)
        out = {"streams_open": len(self.streams), "streams_total": self.streams_total, "ticks_total": self.ticks,
               "tick_seconds_p50": float(np.percentile(times, 50)), "tick_seconds_p99": float(np.percentile(times, 99)),
               "dropped_audio_seconds_total": self.dropped_samples_s}
        return out | {f'closed_total{{code="{code}"}}': n for code, n in sorted(self.closes.items())}

    def metrics_text(self) -> str:
        return "".join(f"streamseq_{name} {value:.6g}\n" for name, value in self.metrics().items())

    # ------------------------------------------------------------------ one connection
    async def _handler(self, connection: ServerConnection) -> None:
        cfg = self.config
        try:
            try:
                first = await asyncio.wait_for(connection.recv(), cfg.idle_timeout_s)
            except TimeoutError:
                raise StreamError(4408, f"no hello within {cfg.idle_timeout_s:g} s") from None
            hello = parse_hello(first)
            if self._stopping:
                raise StreamError(1001, "server shutting down")
            if len(self.streams) >= cfg.max_streams:
                raise StreamError(1013, f"server full: {cfg.max_streams} streams open (--max-streams); try again later")
        except StreamError as exc:
            await self._count_close(connection, exc.code, exc.reason)
            return
        except ConnectionClosed:
            return
        pipeline = LivePipeline(self.uni, self.bi, preroll_s=cfg.preroll_s, history_s=max(2.0, cfg.preroll_s + 1.5))
        session = _EngineSession(self.engine)
        pipeline.session = session
        stream = _Stream(hello, pipeline, session, connection, tokens=cfg.max_messages_per_s)
        self.streams[session.stream_id] = stream
        self.streams_total += 1
        sender = asyncio.create_task(self._send_loop(stream))
        stream.outbox.put_nowait({
            "type": "ready", "stream": session.stream_id, "frame_shift_s": self.engine.frame_shift_s,
            "uni": self.names[0], "bi": self.names[1], "uni_output_delay_frames": self.uni.config.output_delay,
            "max_frame_bytes": cfg.max_frame_bytes, "decimate": hello.decimate})
        try:
            await self._receive(stream)
            if stream.ending is None:  # closed by the client without {"type": "end"}
                self._fail(stream, 1006, "client went away")
        except StreamError as exc:
            self._fail(stream, exc.code, exc.reason)
        except ConnectionClosed:
            self._fail(stream, 1006, "client went away")  # cleanup only: nobody to tell
        await sender

    async def _receive(self, stream: _Stream) -> None:
        cfg, hello = self.config, stream.hello
        cap = round(cfg.max_queue_s * hello.sample_rate)
        async for message in stream.connection:
            now = time.monotonic()
            rate = cfg.max_messages_per_s
            stream.tokens = min(rate, stream.tokens + (now - stream.last_seen) * rate)
            stream.last_seen = now
            stream.tokens -= 1
            if stream.tokens < 0:
                raise StreamError(1008, f"more than {cfg.max_messages_per_s:g} messages per second "
                                        "(--max-messages-per-s); send larger frames")
            if stream.closed:
                return
            if isinstance(message, str):
                if _is_end(message):
                    stream.ending = (1000, "end of stream")
                    return
                raise StreamError(1003, 'expected binary audio frames or {"type": "end"}; received other text')
            samples = decode_frame(message, hello)
            if stream.queued + len(samples) > cap:
                if cfg.overflow == "drop":
                    self.dropped_samples_s += len(samples) / hello.sample_rate
                    stream.outbox.put_nowait({"type": "dropped", "seconds": len(samples) / hello.sample_rate})
                    continue
                while stream.queued and not stream.closed:  # block: stop reading until the tick drains it
                    stream.drained.clear()
                    await stream.drained.wait()
            stream.inbox.append(samples)
            stream.queued += len(samples)

    async def _send_loop(self, stream: _Stream) -> None:
        try:
            while True:
                item = await stream.outbox.get()
                if isinstance(item, tuple):
                    code, reason = item
                    if code != 1006:
                        await stream.connection.close(code, reason[:120])  # close reasons: 123 bytes at most
                    return
                await stream.connection.send(json.dumps(item, separators=(",", ":")))
        except ConnectionClosed:
            pass
        finally:
            stream.done.set()

    def _fail(self, stream: _Stream, code: int, reason: str) -> None:
        """Close ``stream`` now, without its final segment; forget it."""
        if stream.closed:
            return
        stream.closed = True
        self.streams.pop(stream.session.stream_id, None)
        if stream.session.stream_id in self.engine:
            self.engine.discard(stream.session.stream_id)
        self.closes[code] = self.closes.get(code, 0) + 1
        stream.drained.set()
        stream.outbox.put_nowait((code, reason))

    async def _count_close(self, connection: ServerConnection, code: int, reason: str) -> None:
        self.closes[code] = self.closes.get(code, 0) + 1
        await connection.close(code, reason[:120])

    # ------------------------------------------------------------------ ticks
    def tick(self) -> None:
        """Feed every stream's waiting audio to the engine, step all in one batched call, decode, emit."""
        t0 = time.perf_counter()
        fed: list[tuple[_Stream, np.ndarray]] = []
        for stream in list(self.streams.values()):
            if stream.inbox:
                block = stream.inbox[0] if len(stream.inbox) == 1 else np.concatenate(stream.inbox)
                stream.inbox, stream.queued = [], 0
                stream.drained.set()
                try:
                    self.engine.accept(stream.session.stream_id, block, sample_rate=stream.hello.sample_rate)
                except ValueError as exc:
                    self._fail(stream, 1007, f"audio rejected: {exc}")
                    continue
                fed.append((stream, block))
        outputs = self.engine.step() if fed else {}
        for stream, block in fed:
            sid = stream.session.stream_id
            stream.session.ready = outputs.get(sid) or FrameOutputs.empty(
                self.engine.streams[sid].frames_out, self.uni.config.n_outputs, self.engine.frame_shift_s)
            self._run(stream, lambda s=stream, b=block: s.pipeline.accept(b, s.hello.sample_rate))
        for stream in list(self.streams.values()):
            if stream.ending is not None and not stream.inbox:
                self._run(stream, stream.pipeline.finish)
                code, reason = stream.ending
                self._fail(stream, code, reason)
        if fed:
            self.ticks += 1
            self.tick_times.append(time.perf_counter() - t0)

    def _run(self, stream: _Stream, call: Any) -> None:
        """Run one stream's decoding; an error closes that stream (1011) and nothing else."""
        if stream.closed:
            return
        try:
            events: list[LiveEvent] = call()
        except Exception as exc:  # a decoder error: this stream only
            self._fail(stream, 1011, f"internal error: {type(exc).__name__}: {exc}")
            return
        for event in events:
            message = _event_json(event, stream.hello.decimate)
            if message is not None:
                stream.outbox.put_nowait(message)
        if stream.outbox.qsize() > self.config.max_pending_events:
            self._fail(stream, 4008, f"client does not read events: over {self.config.max_pending_events} waiting")
            stream.connection.transport.abort()

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        cfg = self.config
        next_tick = time.monotonic()
        while not stop.is_set():
            next_tick = max(next_tick + cfg.tick_s, time.monotonic())
            try:
                await asyncio.wait_for(stop.wait(), next_tick - time.monotonic())
            except TimeoutError:
                pass
            now = time.monotonic()
            for stream in list(self.streams.values()):
                if stream.ending is None and now - stream.last_seen > cfg.idle_timeout_s:
                    stream.ending = (4408, f"idle for {cfg.idle_timeout_s:g} s (--idle-timeout)")
            self.tick()

    async def run(self, host: str, port: int, stop: asyncio.Event, *, reuse_port: bool = False,
                  on_ready: Any = None) -> None:
        """Serve until ``stop`` is set; then flush every stream's final segment and close it with 1001."""
        async with serve(self._handler, host, port, process_request=self._process_request, compression=None,
                         max_size=self.config.max_frame_bytes, reuse_port=reuse_port or None) as server:
            if on_ready is not None:
                on_ready(_bound_port(server))
            await self._tick_loop(stop)
            self._stopping = True
            streams = list(self.streams.values())
            for stream in streams:
                if stream.ending is None:
                    stream.ending = (1001, "server shutting down")
            self.tick()
            if streams:
                await asyncio.wait([asyncio.ensure_future(s.done.wait()) for s in streams], timeout=10)


def _bound_port(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


def _is_end(message: str) -> bool:
    try:
        data = json.loads(message)
    except json.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("type") == "end"


def _event_json(event: LiveEvent, decimate: int) -> dict[str, Any] | None:
    """A pipeline event as the JSON message the client gets (None: nothing to send)."""
    r = _r
    if isinstance(event, BlockUpdate):
        if not len(event.probs):
            return None
        first = event.first_frame + (-event.first_frame) % decimate  # frames on the decimation grid
        p = event.probs[first - event.first_frame :: decimate]
        if not len(p):
            return None
        return {"type": "probs", "frame": first, "step": decimate, "p": np.round(p, 3).tolist(),
                "stream_s": r(event.stream_s)}
    if isinstance(event, SpeechStart):
        return {"type": "start", "utterance": event.utterance, "start_s": r(event.start_s),
                "decided_s": r(event.decided_s)}
    if isinstance(event, UniSegment):
        return {"type": "segment", "utterance": event.utterance, "start_s": r(event.start_s), "end_s": r(event.end_s),
                "mean_prob": r(event.mean_prob), "end_decided_s": r(event.end_decided_s),
                "end_latency_s": r(event.end_latency_s), "at_stream_end": event.at_stream_end}
    if isinstance(event, BiDecision):
        segments = [[r(s.start), r(s.end)] for s in event.segments]
        return {"type": "bi", "utterance": event.utterance, "segments": segments,
                "utterance_start_s": r(event.utterance_start_s), "utterance_end_s": r(event.utterance_end_s),
                "decided_s": r(event.decided_s), "wait_s": r(event.wait_s), "compute_s": r(event.compute_s)}
    if isinstance(event, TaskEvent):
        return {"type": "text", "model": event.model, "utterance": event.utterance, "text": event.text,
                "final": event.final, "decided_s": r(event.decided_s)}
    return None


def _r(x: float) -> float:
    return round(float(x), 4)
