"""The report in a real browser: headless Chromium renders it without errors.

Chromium is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: commands on file descriptor 3, replies on 4,
each a JSON message ended by a NUL byte), with the standard library only.
Without Chromium the test is skipped; install it with
``apt-get install chromium``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from viz_synthetic import synthetic_tables

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
TIMEOUT_S = 60.0


def chromium() -> str:
    """The Chromium executable, or skip saying how to install it."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    pytest.skip(
        "headless Chromium not found; install it with `apt-get install chromium` "
        "(Debian/Ubuntu) to run the browser test"
    )


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, executable: str, profile: Path) -> None:
        command_read, self._command_write = os.pipe()
        self._reply_read, reply_write = os.pipe()

        def wire_pipes() -> None:  # runs in the child, before exec
            # Copy above 10 first so that the dup2 below never clobbers a source.
            high_read = fcntl.fcntl(command_read, fcntl.F_DUPFD, 10)
            high_write = fcntl.fcntl(reply_write, fcntl.F_DUPFD, 10)
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        self.log = profile.parent / "chromium.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=wire_pipes,
            close_fds=False,
        )
        os.close(command_read)
        os.close(reply_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
    ) -> dict[str, Any]:
        """Send a command and wait for its reply; events seen meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {
            "id": self._next_id,
            "method": method,
            "params": params or {},
        }
        if session:
            message["sessionId"] = session
        os.write(self._command_write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        """Wait for an event called ``method`` (or return one already seen)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._receive()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._reply_read], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"Chromium sent nothing for {TIMEOUT_S} s")
            chunk = os.read(self._reply_read, 1 << 20)
            if not chunk:
                log = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium closed the pipe; its log:\n{log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._command_write)
        os.close(self._reply_read)
        self._log_file.close()


def errors_in(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and error log entries among events."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            found.append(f"console.error: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"exception: {params.get('exceptionDetails')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            found.append(f"log: {params['entry'].get('text')}")
    return found


@pytest.fixture(scope="module")
def browser_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from annlens.viz import build_report

    tables = synthetic_tables(
        np.random.default_rng(5),
        variants={"sigmoid": (0.3, 3e-5, "sigmoid"), "relu": (0.9, 1e-3, "relu")},
        steps=40,
        layers=["dense_0", "dense_1"],
    )
    finding = {
        "rule": "vanishing_gradient",
        "severity": "error",
        "variant": "sigmoid",
        "layer": "dense_0",
        "steps": [0, 20, 40],
        "value": 0.004,
        "threshold": 0.01,
        "message": "The signal reaching dense_0 is 250 times smaller than at the end.",
        "suggestion": "Try Glorot's initialisation.",
    }
    folder = tmp_path_factory.mktemp("browser")
    return build_report(
        {
            "stats": tables.stats,
            "metrics": tables.metrics,
            "histograms": tables.histograms,
            "spectra": tables.spectra,
        },
        folder / "report.html",
        title="Browser check",
        findings=[finding],
        dpi=100,
    )


def test_report_renders_in_chromium_without_errors_and_every_figure_loads(
    browser_report: Path, tmp_path: Path
) -> None:
    devtools = DevTools(chromium(), tmp_path / "profile")
    try:
        target = devtools.send("Target.createTarget", {"url": "about:blank"})
        attached = devtools.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            devtools.send(f"{domain}.enable", session=session)
        devtools.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        devtools.send(
            "Page.navigate", {"url": browser_report.as_uri()}, session=session
        )
        devtools.wait_for("Page.loadEventFired")

        images = devtools.send(
            "Runtime.evaluate",
            {
                "expression": "JSON.stringify(Array.from(document.images).map("
                "i => [i.complete, i.naturalWidth, i.naturalHeight]))",
                "returnByValue": True,
            },
            session=session,
        )
        loaded = json.loads(images["result"]["value"])
        metrics = devtools.send("Page.getLayoutMetrics", session=session)
        size = metrics["cssContentSize"]
        shot = devtools.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                },
            },
            session=session,
        )
        screenshot = tmp_path / "report.png"
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        devtools.close()

    expected = browser_report.read_text(encoding="utf-8").count("<img ")
    assert expected > 5
    assert len(loaded) == expected
    assert all(
        complete and width > 0 and height > 0 for complete, width, height in loaded
    )
    assert errors_in(devtools.events) == []
    requested = [
        e["params"]["request"]["url"]
        for e in devtools.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requested and all(u.startswith(("file:", "data:")) for u in requested)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert size["height"] > 2000


def test_a_long_variant_name_wraps_instead_of_widening_the_page(
    tmp_path: Path,
) -> None:
    from annlens.viz import build_report

    long_name = "a-very-long-variant-name-" * 4
    report = build_report(
        {},
        tmp_path / "report.html",
        title="Long names",
        variants={long_name: "its description", "short": "another"},
        findings=[
            {
                "rule": "saturated_units",
                "severity": "warning",
                "variant": long_name,
                "layer": "dense_0",
                "steps": [0, 10],
                "value": 0.7,
                "threshold": 0.4,
                "message": "Most units are saturated.",
            }
        ],
        standard=False,
    )
    devtools = DevTools(chromium(), tmp_path / "profile")
    try:
        target = devtools.send("Target.createTarget", {"url": "about:blank"})
        attached = devtools.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        session = attached["sessionId"]
        devtools.send("Page.enable", session=session)
        devtools.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1000, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        devtools.send("Page.navigate", {"url": report.as_uri()}, session=session)
        devtools.wait_for("Page.loadEventFired")
        widths = devtools.send(
            "Runtime.evaluate",
            {
                "expression": "JSON.stringify([document.querySelector('main')"
                ".clientWidth].concat(Array.from(document.querySelectorAll("
                "'table')).map(t => t.scrollWidth)))",
                "returnByValue": True,
            },
            session=session,
        )
    finally:
        devtools.close()
    main, *tables = json.loads(widths["result"]["value"])
    assert len(tables) >= 2
    assert all(width <= main for width in tables), (main, tables)
