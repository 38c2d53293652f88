"""The built-in flame graph's JavaScript in a real headless Chromium (Debian's).

The test drives Chromium over the DevTools Protocol with a minimal stdlib websocket
client: real mouse clicks zoom and reset, the Search prompt is answered through the
protocol, ``?s=REGEX`` is loaded from the URL, and PNG screenshots land in
``tests/artifacts/`` (the initial view through ``--screenshot``, the searched view through
the protocol).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bee_report.reporters import svg_builtin
from bee_report.reporters.flamegraph import render_svg
from bee_report.reporters.options import FlameOptions

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
]
ROWS = [
    (("app", "main", "parse", "lex"), 30),
    (("app", "main", "parse", "parse_expr", "parse"), 20),
    (("app", "main", "run", "parse"), 7),
    (("app", "main", "run", "compute", "memcpy_[i]"), 12),
    (("app", "main", "run", "compute"), 28),
    (("app", "main", "do_syscall_64_[k]"), 3),
    (("app", "main"), 13),
]  # 113 samples
FULL = 1200 - 2 * svg_builtin.XPAD


def artifacts() -> Path:
    """tests/artifacts/, created on demand and ignoring its own contents for git."""
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return ARTIFACTS


class WebSocket:
    """Just enough of RFC 6455 for a client: text frames out (masked), frames in."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if b1 & 0x80 else b""
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("websocket closed by peer")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """A DevTools Protocol session on one page: calls, events, script evaluation."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.next_id = 0
        self.results: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> int:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return self.next_id

    def _pump(self) -> None:
        message = json.loads(self.ws.recv())
        if "id" in message:
            self.results[message["id"]] = message
        else:
            self.events.append(message)

    def result(self, call_id: int) -> dict[str, Any]:
        while call_id not in self.results:
            self._pump()
        message = self.results.pop(call_id)
        if "error" in message:
            raise RuntimeError(f"DevTools error: {message['error']}")
        result: dict[str, Any] = message["result"]
        return result

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.result(self.send(method, **params))

    def event(self, method: str) -> dict[str, Any]:
        while True:
            for i, message in enumerate(self.events):
                if message["method"] == method:
                    del self.events[i]
                    params: dict[str, Any] = message["params"]
                    return params
            self._pump()

    def eval(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def click(self, x: float, y: float) -> int:
        """Press and release the left button at (x, y); returns the release call's id."""
        args = {"x": x, "y": y, "button": "left", "clickCount": 1}
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        self.call("Input.dispatchMouseEvent", type="mousePressed", **args)
        return self.send("Input.dispatchMouseEvent", type="mouseReleased", **args)

    def load(self, url: str) -> None:
        """Navigate and wait for the load event (the SVG's init runs on load)."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.event("Page.loadEventFired")
        if not self.eval("typeof nodes !== 'undefined' && nodes.length > 0"):
            raise RuntimeError(f"{url}: the flame graph script did not initialise")


@pytest.fixture(scope="module")
def chromium() -> Iterator[DevTools]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"chromium not installed ({CHROMIUM}); apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="bee-chromium-") as profile:
        log = open(Path(profile, "chromium.log"), "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        ws = None
        try:
            port_file = Path(profile, "DevToolsActivePort")
            deadline = time.monotonic() + 15
            while not port_file.exists() or not port_file.read_text().strip():
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = Path(profile, "chromium.log").read_text(errors="replace")[-500:]
                    pytest.fail(f"chromium did not start: {tail}")
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
                targets = json.load(reply)
            page = next(t for t in targets if t["type"] == "page")
            ws = WebSocket(page["webSocketDebuggerUrl"], timeout=15)
            session = DevTools(ws)
            session.call("Page.enable")
            yield session
        finally:
            if ws is not None:
                ws.close()
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            # its helpers (renderer, GPU, crash handler) may outlive it, still writing into
            # the profile folder while it is removed: end the whole session first
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.close()


@pytest.fixture(scope="module")
def svg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flame") / "flame.svg"
    path.write_text(render_svg(ROWS, FlameOptions(renderer="builtin")), encoding="utf-8")
    return path


def frame_js(name: str, nth: int = 0) -> str:
    """A JavaScript expression for the nth frame element labelled ``name``."""
    return (
        f"[...document.querySelectorAll('#frames > g.f')]"
        f".filter(g => g.getAttribute('data-n') === {json.dumps(name)})[{nth}]"
    )


def width_of(cdp: DevTools, name: str, nth: int = 0) -> float:
    return float(cdp.eval(f"{frame_js(name, nth)}.children[1].getAttribute('width')"))


def center(cdp: DevTools, element_js: str) -> tuple[float, float]:
    box = cdp.eval(
        f"(() => {{ const r = ({element_js}).getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    return float(box[0]), float(box[1])


def test_click_zoom_reset_and_search(chromium: DevTools, svg_path: Path) -> None:
    cdp = chromium
    started = time.monotonic()
    url = svg_path.as_uri()
    cdp.load(url)
    run_width = width_of(cdp, "run")
    assert abs(run_width - 47 * FULL / 113) < 0.1

    # a real click on "run" zooms it to the full width
    cdp.result(cdp.click(*center(cdp, f"{frame_js('run')}.children[1]")))
    assert abs(width_of(cdp, "run") - FULL) < 0.1
    assert abs(width_of(cdp, "compute") - 40 * FULL / 47) < 0.1  # descendants rescaled
    assert cdp.eval(f"{frame_js('main')}.classList.contains('parent')")  # ancestors faded
    assert abs(width_of(cdp, "main") - FULL) < 0.1
    assert cdp.eval(f"getComputedStyle({frame_js('lex')}).display") == "none"  # others hidden
    box = cdp.eval(f"{frame_js('run')}.children[1].getBoundingClientRect().width")
    assert abs(box - FULL) < 1.0  # and on screen too

    # "Reset Zoom" restores the original layout
    assert cdp.eval("getComputedStyle(document.getElementById('unzoom')).display") != "none"
    cdp.result(cdp.click(*center(cdp, "document.getElementById('unzoom')")))
    assert width_of(cdp, "run") == run_width
    assert cdp.eval(f"getComputedStyle({frame_js('lex')}).display") != "none"
    assert cdp.eval("document.getElementById('unzoom').classList.contains('hide')")

    # "Search" prompts for a regex; nested matches count once: 30 + 20 + 7 of 113
    release = cdp.click(*center(cdp, "document.getElementById('search')"))
    dialog = cdp.event("Page.javascriptDialogOpening")
    assert dialog["type"] == "prompt"
    cdp.call("Page.handleJavaScriptDialog", accept=True, promptText="^parse$")
    cdp.result(release)
    expected = f"Matched: {100 * 57 / 113:.1f}%"
    assert cdp.eval("document.getElementById('matched').textContent") == expected
    magenta = cdp.eval(
        "[...document.querySelectorAll('#frames > g.f')]"
        ".filter(g => g.children[1].getAttribute('fill') === 'rgb(230,0,230)')"
        ".map(g => g.getAttribute('data-n'))"
    )
    assert magenta == ["parse", "parse", "parse"]
    cdp.result(cdp.click(*center(cdp, f"{frame_js('main')}.children[1]")))
    shot = cdp.call("Page.captureScreenshot", format="png")
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG")
    (artifacts() / "flamegraph_search_zoom.png").write_bytes(png)

    # "Reset Search" restores the colours
    cdp.result(cdp.click(*center(cdp, "document.getElementById('search')")))
    assert cdp.eval("document.getElementById('matched').textContent") == " "
    assert not cdp.eval("document.querySelector('rect[fill=\"rgb(230,0,230)\"]')")

    # ?s=REGEX searches on load
    cdp.load(url + "?s=" + urllib.parse.quote("^(lex|compute)$"))
    expected = f"Matched: {100 * 70 / 113:.1f}%"
    assert cdp.eval("document.getElementById('matched').textContent") == expected
    assert time.monotonic() - started < 20


def test_screenshot(svg_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"chromium not installed ({CHROMIUM}); apt-get install chromium")
    height = int(svg_path.read_text().split('height="', 1)[1].split('"', 1)[0])
    out = artifacts() / "flamegraph.png"
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="bee-chromium-") as profile:
        subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={out}",
                f"--window-size=1200,{height}",
                svg_path.as_uri(),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=True,
        )
    assert out.read_bytes().startswith(b"\x89PNG")
