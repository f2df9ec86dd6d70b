"""``streamseq serve``: live VAD (or digits) for many WebSocket streams, all stepped by one :class:`Engine`.

Protocol (one WebSocket per stream, at ``/ws``)::

    client -> {"type": "hello", "sample_rate": 16000, "encoding": "int16" | "float32",
               "channels": 1, "decimate": 1}                          (text, first message)
    server -> {"type": "ready", "stream": id, "frame_shift_s": 0.01, ...}
    client -> binary frames: interleaved little-endian PCM, any number of whole sample frames
    server -> {"type": "probs", "frame": f, "step": k, "p": [...]}    uni speech prob. of frames f, f+k, ...
              {"type": "start", ...} {"type": "segment", ...} {"type": "bi", ...}   (see _event_json)
              {"type": "text", "model": "uni" | "bi", "text": "415", "final": false, ...}   digits models only
    client -> {"type": "end"}                                         (text: flush, then close 1000)

Data flow: the WebSocket layer is picows (its frame parsing and writing are compiled; at 10
messages a second each way per stream it costs about 0.55 ms of CPU per stream-second, where the
pure-Python ``websockets`` costs 1.3, and that alone would keep one core under 500 streams).
picows calls back on the event loop with each frame; a binary frame is decoded into its stream's
inbox (bounded: ``max_queue_s`` of audio; ``overflow="block"`` stops reading that socket until the
next tick drains it, ``"drop"`` discards the frame and counts it). Every ``tick_s`` one tick takes
every inbox, feeds the audio to the :class:`~streamseq.streaming.engine.Engine` and steps all
streams in one batched call; each stream's outputs then go through its own
:class:`~streamseq.apps.live.LivePipeline` (Segmenter, bi model after each utterance, waits
measured in stream time) as in ``streamseq mic``, and its events are written to its socket; the
bi passes of all utterances that ended in a tick run last, in one padded batch
(:func:`~streamseq.streaming.session.finish_together`). A client that reads slowly only fills its
own socket buffer and then its backlog (closed with 4008 past ``max_pending_events``); it never
stalls the tick. No per-message compression:
PCM hardly compresses, and inflating it cost more CPU than the model.

Close codes: 1000 end of stream; 1001 server shutting down (after the final segment is flushed);
1002 continuation frame with nothing to continue; 1003 binary frame that is not whole PCM sample
frames, or text where audio was expected; 1007 samples rejected (NaN, inf) or text not UTF-8;
1008 bad hello, unsupported rate/encoding, message rate over the limit; 1009 message over
``max_frame_bytes``; 1011 internal error in this stream (others go on); 1013 server full
(``max_streams``); 4008 client not reading events; 4408 idle for ``idle_timeout_s`` (final
segment flushed first), or no hello within it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from importlib import resources
from typing import Any

import numpy as np
import orjson
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from streamseq.apps.live import BiDecision, BlockUpdate, LiveEvent, LivePipeline, SpeechStart, TaskEvent, UniSegment
from streamseq.audio.convert import MAX_CHANNELS, validate_sample_rate
from streamseq.models.recurrent import FrameModel
from streamseq.streaming.engine import Engine
from streamseq.streaming.outputs import FrameOutputs
from streamseq.streaming.session import Session, finish_together

ENCODINGS: dict[str, np.dtype] = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
HELLO_KEYS = {"type", "sample_rate", "encoding", "channels", "decimate"}
CLOSE_TIMEOUT_S = 2.0  # after sending a close frame, wait this long for the client's before hanging up
_LOGGER = "streamseq.serve"  # picows logs protocol errors under picows.streamseq.serve


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


def parse_hello(message: str | bytes | memoryview) -> Hello:
    """The client's first message -> :class:`Hello`, or :class:`StreamError` (1008) saying what is wrong."""
    example = '{"type": "hello", "sample_rate": 16000, "encoding": "int16", "channels": 1}'
    if not isinstance(message, str):
        raise StreamError(1008, f"expected a JSON hello as the first (text) message, e.g. {example}; received binary")
    try:
        hello = orjson.loads(message)
    except orjson.JSONDecodeError:
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


def decode_frame(data: bytes | memoryview, hello: Hello) -> np.ndarray:
    """A binary frame -> ``(n,)`` finite float32 mono samples, or :class:`StreamError` (1003, 1007)."""
    width = hello.dtype.itemsize * hello.channels
    if not data or len(data) % width:
        raise StreamError(1003, f"binary frames must hold whole sample frames of {width} bytes "
                                f"({hello.channels} x {hello.dtype.name}); received {len(data)} bytes")
    samples = np.frombuffer(data, hello.dtype)  # (n * channels,) interleaved, a view of the message
    if hello.dtype.kind == "i":
        samples = samples * np.float32(1 / 32768)  # int16 PCM -> a float32 copy in [-1, 1): always finite
    elif not math.isfinite(samples.sum()) and not np.isfinite(samples).all():  # the cheap check first
        raise StreamError(1007, f"audio rejected: {int((~np.isfinite(samples)).sum())} NaN or infinite "
                                "sample value(s); expected finite float32 samples")
    else:
        samples = samples.copy()  # the message's buffer is reused once this callback returns
    if hello.channels > 1:
        samples = samples.reshape(-1, hello.channels).mean(axis=1, dtype=np.float32)  # (n,)
    return samples


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


class _Connection(WSListener):
    """One WebSocket: picows calls ``on_ws_*`` on the event loop; the server does the rest.

    Before the hello ``hello``/``pipeline``/``session`` are None; after it the connection is a stream."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        self.transport: WSTransport | None = None
        self.opened = self.last_seen = time.monotonic()
        self.hello: Hello | None = None
        self.pipeline: LivePipeline | None = None
        self.session: _EngineSession | None = None
        self.inbox: list[np.ndarray] = []
        self.queued = 0  # samples in inbox
        self.reading_paused = False  # overflow="block": the socket is not read until the next tick
        self.tokens = server.config.max_messages_per_s  # message-rate bucket
        self.fragments: list[bytes] | None = None  # parts of a fragmented message, first frame's type first
        self.fragment_type = WSMsgType.BINARY
        self.backlog: deque[bytes] = deque()  # events waiting while the socket's write buffer is full
        self.writable = True
        self.ending: tuple[int, str] | None = None  # close once the tick has flushed the final segment
        self.closed = False  # close sent (or the peer is gone): nothing more goes out

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.server.connections.add(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.server._on_frame(self, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.server._on_disconnected(self)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        while self.backlog and self.writable and self.transport is not None:
            self.transport.send(WSMsgType.TEXT, self.backlog.popleft())


class StreamServer:
    """All streams of one worker process; see the module docstring."""

    def __init__(self, uni: FrameModel, bi: FrameModel | None = None, config: ServeConfig = ServeConfig(),
                 names: tuple[str, str | None] = ("uni", None)) -> None:
        self.uni, self.bi, self.config, self.names = uni, bi, config, names
        LivePipeline(uni, bi)  # the checks (task, uni/bi pair) fail here, at start-up, not per stream
        self.engine = Engine(uni, threads=1)
        self.connections: set[_Connection] = set()  # every open WebSocket, streams or not yet
        self.streams: dict[int, _Connection] = {}  # those past their hello, by engine stream id
        self.page = resources.files("streamseq.apps").joinpath("serve_page.html").read_bytes()
        self.ticks, self.streams_total, self.dropped_samples_s = 0, 0, 0.0
        self.tick_times: deque[float] = deque(maxlen=2000)
        self.closes: dict[int, int] = {}
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ HTTP
    def _route(self, request: WSUpgradeRequest) -> _Connection | WSUpgradeResponseWithListener:
        path = request.path.split(b"?")[0].decode("latin-1")
        if path == "/ws":
            return _Connection(self)
        if path == "/":
            return _page(HTTPStatus.OK, self.page, "text/html; charset=utf-8")
        if path == "/healthz":
            state = "stopping" if self._stopping else "ok"
            body = orjson.dumps({"status": state, "streams": len(self.streams), "uni": self.names[0],
                               "bi": self.names[1]})
            return _page(HTTPStatus.OK if state == "ok" else HTTPStatus.SERVICE_UNAVAILABLE, body, "application/json")
        if path == "/metrics":
            return _page(HTTPStatus.OK, self.metrics_text(), "text/plain; version=0.0.4")
        return _page(HTTPStatus.NOT_FOUND, f"no page {path}; try / /ws /healthz /metrics\n", "text/plain")

    def metrics(self) -> dict[str, float]:
        times = np.array(self.tick_times) if self.tick_times else np.zeros(1)
        out = {"streams_open": len(self.streams), "streams_total": self.streams_total, "ticks_total": self.ticks,
               "tick_seconds_p50": float(np.percentile(times, 50)), "tick_seconds_p99": float(np.percentile(times, 99)),
               "dropped_audio_seconds_total": self.dropped_samples_s}
        return out | {f'closed_total{{code="{code}"}}': n for code, n in sorted(self.closes.items())}

    def metrics_text(self) -> str:
        return "".join(f"streamseq_{name} {value:.6g}\n" for name, value in self.metrics().items())

    # ------------------------------------------------------------------ one connection
    def _on_frame(self, conn: _Connection, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:  # the client closes: answer, forget its stream (no final segment)
            if not conn.closed:
                self._forget(conn, 1006)
                conn.closed = True
                assert conn.transport is not None
                conn.transport.send_close(frame.get_close_code())
            assert conn.transport is not None
            conn.transport.disconnect()
            return
        if conn.closed or kind in (WSMsgType.PING, WSMsgType.PONG):
            return
        try:
            message = self._message(conn, frame)
            if message is not None:
                self._on_message(conn, message)
        except StreamError as exc:
            self._fail(conn, exc.code, exc.reason)

    def _message(self, conn: _Connection, frame: WSFrame) -> str | bytes | memoryview | None:
        """The whole message a frame completes (text as str), or None while a fragmented one goes on."""
        if frame.msg_type == WSMsgType.CONTINUATION:
            if conn.fragments is None:
                raise StreamError(1002, "continuation frame without a message to continue")
            conn.fragments.append(frame.get_payload_as_bytes())
            if sum(map(len, conn.fragments)) > self.config.max_frame_bytes:
                raise StreamError(1009, f"message over {self.config.max_frame_bytes} bytes (--max-frame-bytes)")
            if not frame.fin:
                return None
            data: bytes | memoryview = b"".join(conn.fragments)
            kind, conn.fragments = conn.fragment_type, None
        elif not frame.fin:
            conn.fragments, conn.fragment_type = [frame.get_payload_as_bytes()], frame.msg_type
            return None
        else:
            kind, data = frame.msg_type, frame.get_payload_as_memoryview()
        if kind != WSMsgType.TEXT:
            return data
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError:
            raise StreamError(1007, "text message is not valid UTF-8") from None

    def _on_message(self, conn: _Connection, message: str | memoryview | bytes) -> None:
        cfg = self.config
        if conn.hello is None:
            self._start(conn, parse_hello(message))
            return
        now = time.monotonic()
        rate = cfg.max_messages_per_s
        conn.tokens = min(rate, conn.tokens + (now - conn.last_seen) * rate) - 1
        conn.last_seen = now
        if conn.tokens < 0:
            raise StreamError(1008, f"more than {cfg.max_messages_per_s:g} messages per second "
                                    "(--max-messages-per-s); send larger frames")
        if conn.ending is not None:
            return
        if isinstance(message, str):
            if not _is_end(message):
                raise StreamError(1003, 'expected binary audio frames or {"type": "end"}; received other text')
            conn.ending = (1000, "end of stream")  # the next tick flushes and closes
            return
        samples = decode_frame(message, conn.hello)
        if conn.queued + len(samples) > round(cfg.max_queue_s * conn.hello.sample_rate):
            if cfg.overflow == "drop":
                self.dropped_samples_s += len(samples) / conn.hello.sample_rate
                self._send(conn, {"type": "dropped", "seconds": len(samples) / conn.hello.sample_rate})
                return
            if conn.transport is not None and not conn.reading_paused:  # block: read again after the tick
                conn.transport.underlying_transport.pause_reading()
                conn.reading_paused = True
        conn.inbox.append(samples)
        conn.queued += len(samples)

    def _start(self, conn: _Connection, hello: Hello) -> None:
        """A valid hello: the connection becomes a stream of the engine (or is turned away)."""
        cfg = self.config
        if self._stopping:
            raise StreamError(1001, "server shutting down")
        if len(self.streams) >= cfg.max_streams:
            raise StreamError(1013, f"server full: {cfg.max_streams} streams open (--max-streams); try again later")
        session = _EngineSession(self.engine)
        conn.pipeline = LivePipeline(self.uni, self.bi, preroll_s=cfg.preroll_s, session=session,
                                     history_s=max(2.0, cfg.preroll_s + 1.5), defer_bi=True)
        conn.hello, conn.session, conn.last_seen = hello, session, time.monotonic()
        self.streams[session.stream_id] = conn
        self.streams_total += 1
        self._send(conn, {
            "type": "ready", "stream": session.stream_id, "frame_shift_s": self.engine.frame_shift_s,
            "uni": self.names[0], "bi": self.names[1], "uni_output_delay_frames": self.uni.config.output_delay,
            "max_frame_bytes": cfg.max_frame_bytes, "decimate": hello.decimate})

    def _send(self, conn: _Connection, event: dict[str, Any]) -> None:
        if conn.closed or conn.transport is None:
            return
        data = orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY)
        if conn.writable and not conn.backlog:
            conn.transport.send(WSMsgType.TEXT, data)
            return
        conn.backlog.append(data)  # the client reads slower than events come
        if len(conn.backlog) > self.config.max_pending_events:
            self._fail(conn, 4008, f"client does not read events: over {self.config.max_pending_events} waiting",
                       abort=True)

    def _forget(self, conn: _Connection, code: int) -> None:
        """Drop ``conn``'s stream (no final segment) and count its close."""
        if conn.session is not None and self.streams.pop(conn.session.stream_id, None) is not None:
            if conn.session.stream_id in self.engine:
                self.engine.discard(conn.session.stream_id)
        if conn.transport is not None and conn.reading_paused:
            conn.reading_paused = False
            conn.transport.underlying_transport.resume_reading()
        self.closes[code] = self.closes.get(code, 0) + 1

    def _fail(self, conn: _Connection, code: int, reason: str, abort: bool = False) -> None:
        """Close ``conn`` now with ``code`` (events already queued go first), without its final segment."""
        if conn.closed:
            return
        self._forget(conn, code)
        conn.closed = True
        transport = conn.transport
        if transport is None or code == 1006:
            return
        if abort:
            transport.disconnect(graceful=False)
            return
        while conn.backlog:
            transport.send(WSMsgType.TEXT, conn.backlog.popleft())
        transport.send_close(code, reason.encode()[:123])  # type: ignore[arg-type]  # any int code is sent  # close reasons: 123 bytes at most
        assert self._loop is not None
        self._loop.call_later(CLOSE_TIMEOUT_S, transport.disconnect)  # if the client does not answer the close

    def _on_disconnected(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if not conn.closed:  # gone without a close frame: cleanup only, nobody to tell
            self._forget(conn, 1006)
            conn.closed = True

    # ------------------------------------------------------------------ ticks
    def tick(self) -> None:
        """Feed every stream's waiting audio to the engine, step all in one batched call, decode, emit."""
        t0 = time.perf_counter()
        fed: list[tuple[_Connection, np.ndarray]] = []
        for conn in list(self.streams.values()):
            if conn.inbox:
                assert conn.session is not None and conn.hello is not None and conn.transport is not None
                block = conn.inbox[0] if len(conn.inbox) == 1 else np.concatenate(conn.inbox)
                conn.inbox, conn.queued = [], 0
                if conn.reading_paused:
                    conn.reading_paused = False
                    conn.transport.underlying_transport.resume_reading()
                try:
                    self.engine.accept(conn.session.stream_id, block, sample_rate=conn.hello.sample_rate)
                except ValueError as exc:
                    self._fail(conn, 1007, f"audio rejected: {exc}")
                    continue
                fed.append((conn, block))
        outputs = self.engine.step() if fed else {}
        for conn, block in fed:
            assert conn.session is not None and conn.pipeline is not None and conn.hello is not None
            sid = conn.session.stream_id
            conn.session.ready = outputs.get(sid) or FrameOutputs.empty(
                self.engine.streams[sid].frames_out, self.uni.config.n_outputs, self.engine.frame_shift_s)
            self._run(conn, partial(conn.pipeline.accept, block, conn.hello.sample_rate))
        ending = [conn for conn in self.streams.values() if conn.ending is not None and not conn.inbox]
        for conn in ending:
            assert conn.pipeline is not None
            self._run(conn, conn.pipeline.finish)
        self._complete_bi()
        for conn in ending:
            assert conn.ending is not None
            self._fail(conn, *conn.ending)
        if fed:
            self.ticks += 1
            self.tick_times.append(time.perf_counter() - t0)

    def _complete_bi(self) -> None:
        """The bi passes of every utterance that ended in this tick, in one padded batch (one model call)."""
        if self.bi is None:
            return
        waiting = [conn for conn in self.streams.values()
                   if not conn.closed and conn.pipeline is not None and conn.pipeline.pending_bi]
        if not waiting:
            return
        t0 = time.perf_counter()
        try:
            outputs = finish_together([p for conn in waiting if conn.pipeline for p in conn.pipeline.bi_processors()])
        except Exception as exc:  # the bi model failed on this batch: these streams only
            for conn in waiting:
                self._fail(conn, 1011, f"internal error in the bi model: {type(exc).__name__}: {exc}")
            return
        compute_s, first = time.perf_counter() - t0, 0
        for conn in waiting:
            assert conn.pipeline is not None
            n = len(conn.pipeline.pending_bi)
            self._run(conn, partial(conn.pipeline.complete_bi, outputs[first : first + n], compute_s))
            first += n

    def _run(self, conn: _Connection, call: Callable[[], list[LiveEvent]]) -> None:
        """Run one stream's decoding; an error closes that stream (1011) and nothing else."""
        if conn.closed:
            return
        try:
            events = call()
        except Exception as exc:  # a decoder error: this stream only
            self._fail(conn, 1011, f"internal error: {type(exc).__name__}: {exc}")
            return
        assert conn.hello is not None
        for event in events:
            message = _event_json(event, conn.hello.decimate)
            if message is not None:
                self._send(conn, message)

    def _expire(self) -> None:
        """Idle streams end (final segment first); connections without a hello close."""
        now, limit = time.monotonic(), self.config.idle_timeout_s
        for conn in list(self.connections):
            if conn.closed or now - conn.last_seen <= limit:
                continue
            if conn.hello is None:
                self._fail(conn, 4408, f"no hello within {limit:g} s")
            elif conn.ending is None:
                conn.ending = (4408, f"idle for {limit:g} s (--idle-timeout)")

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        next_tick = time.monotonic()
        while not stop.is_set():
            next_tick = max(next_tick + self.config.tick_s, time.monotonic())
            try:
                await asyncio.wait_for(stop.wait(), next_tick - time.monotonic())
            except TimeoutError:
                pass
            self._expire()
            self.tick()

    async def run(self, host: str, port: int, stop: asyncio.Event, *, reuse_port: bool = False,
                  on_ready: Callable[[int], None] | None = None) -> None:
        """Serve until ``stop`` is set; then flush every stream's final segment and close it with 1001."""
        self._loop = asyncio.get_running_loop()
        server = await ws_create_server(self._route, host, port, max_frame_size=self.config.max_frame_bytes,
                                        websocket_handshake_timeout=self.config.idle_timeout_s,
                                        reuse_port=reuse_port or None, logger_name=_LOGGER)
        try:
            if on_ready is not None:
                on_ready(int(server.sockets[0].getsockname()[1]))
            await self._tick_loop(stop)
            self._stopping = True
            server.close()  # no new connections
            for conn in list(self.connections):
                if conn.hello is None:
                    self._fail(conn, 1001, "server shutting down")
                elif conn.ending is None:
                    conn.ending = (1001, "server shutting down")
            self.tick()
            waits = [c.transport.wait_disconnected() for c in self.connections if c.transport is not None]
            if waits:
                await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=10)
        finally:
            server.close()
            await server.wait_closed()


def _page(status: HTTPStatus, body: bytes | str, kind: str) -> WSUpgradeResponseWithListener:
    """A plain HTTP answer (no WebSocket); picows sends it with ``Connection: close``."""
    body = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": kind, "Cache-Control": "no-store"}
    if status == HTTPStatus.OK:
        response = WSUpgradeResponse.create_ok_response(body, headers)
    else:
        response = WSUpgradeResponse.create_error_response(status, body, headers)
    return WSUpgradeResponseWithListener(response, None)


def _is_end(message: str) -> bool:
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("type") == "end"


def _event_json(event: LiveEvent, decimate: int) -> dict[str, Any] | None:
    """A pipeline event as the JSON message the client gets (None: nothing to send); ``p`` is a
    float32 array of probabilities rounded to 3 decimals, which orjson writes as short numbers."""
    r = _r
    if isinstance(event, BlockUpdate):
        if not len(event.probs):
            return None
        first = event.first_frame + (-event.first_frame) % decimate  # frames on the decimation grid
        p = event.probs[first - event.first_frame :: decimate]
        if not len(p):
            return None
        return {"type": "probs", "frame": first, "step": decimate, "p": p.round(3), "stream_s": r(event.stream_s)}
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
