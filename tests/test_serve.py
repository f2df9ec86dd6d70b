"""``streamseq serve``: a real server on 127.0.0.1 (free port), real WebSocket clients, the shipped models.

The reference is ``streamseq process`` (:func:`process_file`) on the same file; bad input must close
only the offending stream, with a clear code and reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import soundfile as sf
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from streamseq.apps.process_files import ProcessOptions, load_task_model, process_file
from streamseq.apps.serve import ServeConfig, StreamServer

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "examples" / "audio" / "meeting_snippet.flac"
T = TypeVar("T")


class ServerThread:
    """A :class:`StreamServer` serving on a free port of 127.0.0.1 from its own thread and event loop."""

    def __init__(self, server: StreamServer) -> None:
        self.server, self.port = server, 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self.server.run("127.0.0.1", 0, self._stop, on_ready=self._on_ready)

    def _on_ready(self, port: int) -> None:
        self.port = port
        self._ready.set()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(30), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's event loop (transports may only be touched from there)."""
        async def run() -> T:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def http(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return response.read().decode()

    def metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in (line.split() for line in self.http("/metrics").splitlines())}


@pytest.fixture(scope="module")
def models():
    return load_task_model("vad-uni"), load_task_model("vad-bi")


@pytest.fixture(scope="module")
def server(models):
    config = ServeConfig(max_streams=8, max_frame_bytes=32000, max_messages_per_s=400, idle_timeout_s=3.0)
    with ServerThread(StreamServer(models[0], models[1], config, names=("vad-uni", "vad-bi"))) as running:
        yield running


def hello(ws: ClientConnection, rate: int = 16000, encoding: str = "int16", channels: int = 1, **extra) -> dict:
    ws.send(json.dumps({"type": "hello", "sample_rate": rate, "encoding": encoding, "channels": channels} | extra))
    ready = json.loads(ws.recv(timeout=10))
    assert ready["type"] == "ready", ready
    return ready


def events_until_close(ws: ClientConnection, timeout: float = 60) -> list[dict]:
    events, deadline = [], time.monotonic() + timeout
    try:
        while True:
            events.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
    except ConnectionClosed:
        return events


def closed_with(ws: ClientConnection, timeout: float = 10) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    events_until_close(ws, timeout)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


def stream_file(url: str, path: Path, block_s: float = 0.1, encoding: str = "int16") -> list[dict]:
    audio, rate = sf.read(path, dtype="int16" if encoding == "int16" else "float32", always_2d=True)
    with connect(url, max_size=None) as ws:
        hello(ws, rate, encoding, audio.shape[1])
        step = round(block_s * rate)
        for i in range(0, len(audio), step):
            ws.send(audio[i : i + step].astype("<i2" if encoding == "int16" else "<f4").tobytes())
        ws.send(json.dumps({"type": "end"}))
        events = events_until_close(ws)
        assert (ws.close_code, ws.close_reason) == (1000, "end of stream")
    return events


def test_segments_match_streamseq_process(server, models):
    """The segments a client gets are those of `streamseq process` on the same file (within one frame);
    the per-frame probabilities cover every frame once; bi decisions follow each utterance."""
    reference = process_file(AUDIO, models[0], ProcessOptions(model="vad-uni")).fields["segments"]
    assert len(reference) >= 2
    events = stream_file(server.url, AUDIO)
    segments = [e for e in events if e["type"] == "segment"]
    assert len(segments) == len(reference)
    for got, want in zip(segments, reference, strict=True):
        assert abs(got["start_s"] - want["start"]) <= 0.01 and abs(got["end_s"] - want["end"]) <= 0.01
    probs = [e for e in events if e["type"] == "probs"]
    frames = [e["frame"] + i for e in probs for i in range(len(e["p"]))]
    assert frames == list(range(len(frames))) and len(frames) == round(sf.info(AUDIO).duration / 0.01)
    bi = [e for e in events if e["type"] == "bi"]
    assert [b["utterance"] for b in bi] == [s["utterance"] for s in segments]
    assert all(b["wait_s"] >= 0 and b["segments"] for b in bi)
    starts = [e for e in events if e["type"] == "start"]
    assert [s["utterance"] for s in starts] == [s["utterance"] for s in segments]


def test_float32_stereo_48k_and_decimation(server, models):
    """Another rate, encoding and channel count give the same segments; decimate=5 sends every 5th frame."""
    audio, rate = sf.read(AUDIO, dtype="float32")
    import torch
    import torchaudio.functional as F

    stereo = F.resample(torch.from_numpy(audio), rate, 48000).numpy()
    stereo = np.stack([stereo, stereo], axis=1)  # (n, 2)
    with connect(server.url) as ws:
        ready = hello(ws, 48000, "float32", 2, decimate=5)
        assert ready["decimate"] == 5 and ready["bi"] == "vad-bi"
        for i in range(0, len(stereo), 2400):
            ws.send(stereo[i : i + 2400].astype("<f4").tobytes())
        ws.send('{"type": "end"}')
        events = events_until_close(ws)
    reference = process_file(AUDIO, models[0]).fields["segments"]
    segments = [(e["start_s"], e["end_s"]) for e in events if e["type"] == "segment"]
    assert len(segments) == len(reference)
    for (start, end), want in zip(segments, reference, strict=True):
        assert abs(start - want["start"]) <= 0.02 and abs(end - want["end"]) <= 0.02  # resampled input
    probs = [e for e in events if e["type"] == "probs"]
    assert all(e["step"] == 5 and e["frame"] % 5 == 0 for e in probs)


def test_concurrent_streams_and_endpoints(server):
    """Several streams at once each get the file's segments; /healthz, /metrics and / answer."""
    results: list[list[dict]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda i=i: results[i].extend(stream_file(server.url, AUDIO, 0.05)))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    segs = [[(e["start_s"], e["end_s"]) for e in r if e["type"] == "segment"] for r in results]
    assert segs[0] and all(s == segs[0] for s in segs)
    health = json.loads(server.http("/healthz"))
    assert health["status"] == "ok" and health["uni"] == "vad-uni"
    metrics = server.metrics()
    assert metrics["streamseq_streams_open"] == 0 and metrics["streamseq_ticks_total"] > 0
    assert 0 < metrics["streamseq_tick_seconds_p50"] <= metrics["streamseq_tick_seconds_p99"]
    assert "getUserMedia" in server.http("/")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A spoken digit string (espeak-ng), the digits-uni model, and a server of digits-uni with digits-bi."""
    spoken = tmp_path_factory.mktemp("digits") / "digits.wav"
    subprocess.run(["espeak-ng", "-w", str(spoken), "four one five, two nine zero. six six seven eight"], check=True)
    uni, bi = load_task_model("digits-uni"), load_task_model("digits-bi")
    with ServerThread(StreamServer(uni, bi, ServeConfig(), names=("digits-uni", "digits-bi"))) as running:
        yield spoken, uni, running


def test_digit_models_stream_partial_transcripts(digits):
    """With digits models the uni transcript grows digit by digit while the utterance goes on, ends as
    `streamseq process` transcribes the same file, and the bi transcript comes only after the bi decision."""
    spoken, uni, running = digits
    events = stream_file(running.url, spoken)
    reference = process_file(spoken, uni, ProcessOptions(model="digits-uni")).fields["utterances"]
    segments = [e for e in events if e["type"] == "segment"]
    assert len(segments) == len(reference) >= 1
    for seg, want in zip(segments, reference, strict=True):
        assert abs(seg["start_s"] - want["start"]) <= 0.01 and abs(seg["end_s"] - want["end"]) <= 0.01
        mine = [(i, e) for i, e in enumerate(events) if e["type"] == "text" and e["utterance"] == seg["utterance"]]
        partials = [e["text"] for _, e in mine if e["model"] == "uni" and not e["final"]]
        assert all(len(b) == len(a) + 1 and b.startswith(a) for a, b in zip(["", *partials], partials, strict=False))
        (closed,) = [i for i, e in enumerate(events) if e is seg]
        (decided,) = [i for i, e in enumerate(events) if e["type"] == "bi" and e["utterance"] == seg["utterance"]]
        assert all(i < closed for i, e in mine if not e["final"])
        (uni_final,) = [(i, e) for i, e in mine if e["model"] == "uni" and e["final"]]
        (bi_final,) = [(i, e) for i, e in mine if e["model"] == "bi"]
        assert uni_final[1]["text"] == want["text"] == (partials[-1] if partials else "")
        assert closed < uni_final[0] and closed < decided < bi_final[0] and bi_final[1]["final"]
    assert any(e["type"] == "text" and not e["final"] for e in events), "no digit was streamed"


BAD_HELLOS = [
    ("not json", 1008, "not JSON"),
    ('{"type": "hi"}', 1008, '"type": "hello"'),
    ('{"type": "hello", "sample_rate": 2000}', 1008, "unsupported sample rate"),
    ('{"type": "hello", "sample_rate": 16000, "encoding": "mp3"}', 1008, "encoding must be"),
    ('{"type": "hello", "sample_rate": 16000, "channels": 0}', 1008, "channels must be"),
    ('{"type": "hello", "sample_rate": 16000, "rate": 1}', 1008, "unknown hello fields"),
]


@pytest.mark.parametrize(("message", "code", "reason"), BAD_HELLOS)
def test_bad_hello_closes_with_reason(server, message, code, reason):
    with connect(server.url) as ws:
        ws.send(message)
        got_code, got_reason = closed_with(ws)
    assert got_code == code and reason in got_reason


def test_bad_frames_close_only_their_stream(server):
    """Each bad stream gets its close code while a good stream alongside is unaffected."""
    with connect(server.url) as good:
        hello(good)
        cases = [
            (lambda ws: ws.send(b"\x01\x02\x03"), 1003, "whole sample frames"),  # odd byte count for int16
            (lambda ws: ws.send(b"\x00" * 32002), 1009, ""),  # over max_frame_bytes
            (lambda ws: ws.send(np.full(160, np.nan, "<f4").tobytes()), 1007, "NaN"),
            (lambda ws: ws.send("some text"), 1003, "expected binary audio"),
        ]
        for i, (send, code, reason) in enumerate(cases):
            with connect(server.url) as ws:
                hello(ws, encoding="float32" if i == 2 else "int16")
                send(ws)
                got_code, got_reason = closed_with(ws)
            assert got_code == code and reason in got_reason, (got_code, got_reason)
        good.send(np.zeros(1600, "<i2").tobytes())
        good.send('{"type": "end"}')
        events = events_until_close(good)
        assert good.close_code == 1000 and sum(len(e["p"]) for e in events if e["type"] == "probs") == 10


def test_message_rate_limit_and_max_streams(server):
    with connect(server.url) as ws:
        hello(ws)
        deadline = time.monotonic() + 10.0  # far more than 400 messages a second until the server closes
        with pytest.raises(ConnectionClosed):
            while time.monotonic() < deadline:
                ws.send(np.zeros(2, "<i2").tobytes())
        code, reason = closed_with(ws)
    assert code == 1008 and "messages per second" in reason
    with contextlib.ExitStack() as stack:
        for _ in range(8):
            hello(stack.enter_context(connect(server.url)))
        with connect(server.url) as extra:
            extra.send(json.dumps({"type": "hello", "sample_rate": 16000}))
            code, reason = closed_with(extra)
        assert code == 1013 and "server full" in reason


def test_vanished_client_and_idle_timeout(server):
    """A client that disappears mid-utterance is cleaned up; an idle one gets its final segment, then 4408."""
    audio, rate = sf.read(AUDIO, dtype="int16")
    with connect(server.url) as ws:
        hello(ws, rate)
        ws.send(audio[: rate * 3].tobytes()[:32000])
        time.sleep(0.2)
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone, without a close frame
    with connect(server.url) as idle:
        hello(idle, rate)
        speech = audio[: rate * 6]
        for i in range(0, len(speech), 8000):
            idle.send(speech[i : i + 8000].tobytes())
        events = events_until_close(idle, timeout=20)
        assert (idle.close_code, "idle" in (idle.close_reason or "")) == (4408, True)
    assert any(e["type"] == "segment" for e in events)
    deadline = time.monotonic() + 5
    while server.metrics()["streamseq_streams_open"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.metrics()["streamseq_streams_open"] == 0


def test_client_that_stops_reading_is_dropped_with_4008_while_others_go_on(models):
    """A client that sends audio but never reads its events: once its socket buffers are full, its
    events wait in the server's backlog; past ``max_pending_events`` the connection is dropped and
    counted under 4008, and a stream alongside still gets all its events and a clean close."""
    config = ServeConfig(max_pending_events=20, max_messages_per_s=10_000)
    with ServerThread(StreamServer(models[0], None, config)) as running:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow link: small buffers end to end
        sock.connect(("127.0.0.1", running.port))
        with connect(running.url, sock=sock, max_queue=1) as stalled:  # reads one event, then stops reading
            stream = hello(stalled)["stream"]
            transport = running.server.streams[stream].transport.underlying_transport
            server_sock = running.call(lambda: transport.get_extra_info("socket"))
            server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            good: list[dict] = []
            alongside = threading.Thread(target=lambda: good.extend(stream_file(running.url, AUDIO)))
            alongside.start()
            block, deadline = np.zeros(16000, "<i2").tobytes(), time.monotonic() + 60
            with pytest.raises(ConnectionClosed):  # the server drops the connection
                while time.monotonic() < deadline:
                    stalled.send(block)
            alongside.join(60)
        assert running.metrics()['streamseq_closed_total{code="4008"}'] == 1
        assert any(e["type"] == "segment" for e in good)
        assert sum(len(e["p"]) for e in good if e["type"] == "probs") == round(sf.info(AUDIO).duration / 0.01)


@pytest.mark.slow
def test_cli_serves_and_flushes_on_sigterm(tmp_path):
    """`streamseq serve` as a process: SIGTERM mid-utterance flushes the open segment, closes 1001, exits 0."""
    proc = subprocess.Popen([sys.executable, "-m", "streamseq.cli.main", "serve", "--port", "0", "--bi", "vad-bi"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        audio, rate = sf.read(AUDIO, dtype="int16")
        with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            hello(ws, rate)
            for i in range(0, rate * 4, 1600):  # stop inside the recording, while speech may go on
                ws.send(audio[i : i + 1600].tobytes())
            seen = []
            while not any(e["type"] == "start" for e in seen):
                seen.append(json.loads(ws.recv(timeout=20)))
            proc.send_signal(signal.SIGTERM)
            events = seen + events_until_close(ws, 20)
            assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
        last_start = max(e["utterance"] for e in events if e["type"] == "start")
        assert any(e["type"] == "segment" and e["utterance"] == last_start for e in events)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------------------- the browser page
class Chromium:
    """Headless Debian Chromium driven over the DevTools protocol (a WebSocket, like everything here)."""

    def __init__(self, url: str, profile: Path, flags: list[str]) -> None:
        from streamseq.debian import locate

        binary = locate("chromium")
        self.proc = subprocess.Popen(
            [str(binary), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1150,760",
             "--autoplay-policy=no-user-gesture-required", *flags, url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert time.monotonic() < deadline and self.proc.poll() is None, "chromium did not start"
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None))
        self._id = 0

    def call(self, method: str, **params: object) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def eval(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        self._stack.close()
        self.proc.terminate()
        self.proc.wait(20)


@pytest.mark.slow
def test_browser_page_shows_segments(server, models, tmp_path):
    """Chromium opens /, streams its fake microphone (the bundled recording) and shows uni segments
    like `streamseq process` finds, each followed by the bi decision. The page's screenshot goes to
    $STREAMSEQ_SCREENSHOT when set (docs/serve_page.png is made so), else beside the test's files."""
    wav = tmp_path / "meeting_snippet.wav"
    audio, rate = sf.read(AUDIO, dtype="int16")
    sf.write(wav, audio, rate, subtype="PCM_16")
    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}%noloop"]
    browser = Chromium(f"http://127.0.0.1:{server.port}/", tmp_path / "profile", flags)
    try:
        deadline = time.monotonic() + 30
        while browser.eval("typeof streamseqStart") != "function":
            assert time.monotonic() < deadline, browser.eval("location.href + ' ' + document.readyState")
            time.sleep(0.2)
        browser.eval("streamseqStart('mic')")
        reference = process_file(AUDIO, models[0]).fields["segments"]
        deadline = time.monotonic() + 60
        shown: list = []
        while time.monotonic() < deadline:
            shown = browser.eval("[...document.querySelectorAll('#segments tr')].map(r => "
                                 "[+r.dataset.start, +r.dataset.end, r.dataset.bi ? JSON.parse(r.dataset.bi) : null])")
            if len(shown) >= len(reference) - 1 and all(s[2] is not None for s in shown):
                break
            time.sleep(0.5)
        print("page shows", shown, "status", browser.eval("streamseq.status"))
        assert len(shown) >= len(reference) - 1 and all(s[2] for s in shown)
        shot = browser.call("Page.captureScreenshot", format="png")["data"]
        Path(os.environ.get("STREAMSEQ_SCREENSHOT", tmp_path / "serve_page.png")).write_bytes(base64.b64decode(shot))
        # the fake device starts the file when capture starts, give or take the first blocks
        offset = shown[0][0] - reference[0]["start"]
        for (start, end, _), want in zip(shown, reference, strict=False):
            assert abs(start - offset - want["start"]) <= 0.15 and abs(end - offset - want["end"]) <= 0.15
    finally:
        browser.close()


@pytest.mark.slow
def test_browser_page_shows_digit_transcripts(digits, tmp_path):
    """With digits models the page shows the uni partial transcript and, per utterance, the uni and bi
    transcripts (Chromium's fake microphone plays a spoken digit string)."""
    wav, _, running = digits
    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}%noloop"]
    browser = Chromium(f"http://127.0.0.1:{running.port}/", tmp_path / "profile", flags)
    try:
        deadline = time.monotonic() + 30
        while browser.eval("typeof streamseqStart") != "function":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        browser.eval("streamseqStart('mic')")
        deadline, rows = time.monotonic() + 40, []
        while time.monotonic() < deadline:
            rows = browser.eval("[...document.querySelectorAll('#segments tr')].map(r => "
                                "[r.dataset.uniText ?? null, r.dataset.biText ?? null])")
            if rows and all(u is not None and b is not None for u, b in rows) and any(u for u, _ in rows):
                break
            time.sleep(0.5)
        print("page shows", rows, "partial", browser.eval("streamseq.partial"))
        assert rows and any(u for u, _ in rows) and all(b is not None for _, b in rows)
        assert browser.eval("streamseq.partial") and browser.eval(
            "getComputedStyle(document.querySelector('th.text')).display") == "table-cell"
    finally:
        browser.close()


@pytest.mark.slow
def test_cli_workers_share_one_port():
    """`--workers 2`: two processes on one port (SO_REUSEPORT); streams on either get the file's segments."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "streamseq.cli.main", "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout is not None
        for _ in range(2):
            assert "listening on" in proc.stdout.readline()
        runs = [[(e["start_s"], e["end_s"]) for e in stream_file(f"ws://127.0.0.1:{port}/ws", AUDIO, 0.5)
                 if e["type"] == "segment"] for _ in range(4)]
        assert runs[0] and all(r == runs[0] for r in runs)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
