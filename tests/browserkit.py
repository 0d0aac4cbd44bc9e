"""Open a report in headless Chromium and check it like a reader would.

A small Chrome DevTools Protocol client (over ``websockets``): it loads a page from
disk, collects console errors, uncaught exceptions and failed loads, checks that every
image decoded, evaluates an optional JavaScript probe, and saves a full-page screenshot.
A test helper (``test_browser``, ``test_p0``, ``test_lab_browser``); it does not ship in the
``opsbook`` package.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.errors import ConfigError

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--window-size=1280,900",
]

_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0})))"""


@dataclass
class PageCheck:
    """What headless Chromium saw on a page."""

    url: str
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    probe: Any = None
    screenshot: Path | None = None

    @property
    def broken_images(self) -> list[str]:
        return [i["src"] for i in self.images if not i["ok"]]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class _CDP:
    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=20)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return True
        while time.monotonic() < deadline:
            try:
                event = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                return False
            self.events.append(event)
            if event.get("method") == method:
                return True
        return False

    def close(self) -> None:
        self.ws.close()


def check_page(
    target: str | Path,
    screenshot: Path | None = None,
    probe: str | None = None,
    timeout: float = 30,
) -> PageCheck:
    """Load ``target`` (a file path or URL) in headless Chromium and report what it saw."""
    binary = find_chromium()
    if binary is None:
        raise ConfigError("no Chromium found", hint="apt-get install chromium")
    url = (
        Path(target).resolve().as_uri()
        if not str(target).startswith(("http", "file:"))
        else str(target)
    )
    profile = tempfile.mkdtemp(prefix="opsbook-chromium-")
    proc = subprocess.Popen(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ws_url = _devtools_url(proc, timeout)
        cdp = _CDP(ws_url)
        try:
            return _inspect(cdp, url, screenshot, probe, timeout)
        finally:
            cdp.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_url(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        if "DevTools listening on" in line:
            return line.split("DevTools listening on", 1)[1].strip()
    raise ConfigError(
        "Chromium did not start its DevTools endpoint",
        hint="check that `chromium --headless --no-sandbox` runs on this machine",
    )


def _inspect(
    cdp: _CDP, url: str, screenshot: Path | None, probe: str | None, timeout: float
) -> PageCheck:
    target = cdp.send("Target.createTarget", {"url": "about:blank"})
    session = cdp.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})[
        "sessionId"
    ]
    for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
        cdp.send(domain, session=session)
    cdp.events.clear()
    cdp.send("Page.navigate", {"url": url}, session=session)
    cdp.wait_for("Page.loadEventFired", timeout)
    time.sleep(0.3)  # let late console messages arrive
    check = PageCheck(url=url)
    check.title = _evaluate(cdp, session, "document.title")
    check.images = json.loads(_evaluate(cdp, session, _IMAGES_JS))
    if probe:
        check.probe = _evaluate(cdp, session, probe)
    check.console_errors = _errors(cdp.events)
    if screenshot is not None:
        metrics = cdp.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        shot = cdp.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size.get("width", 1280),
                    "height": min(size.get("height", 900), 6000),
                    "scale": 1,
                },
            },
            session=session,
        )
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        check.screenshot = screenshot
    return check


def _evaluate(cdp: _CDP, session: str, expression: str) -> Any:
    result = cdp.send(
        "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
    )
    return result.get("result", {}).get("value")


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(
                f"exception: {details.get('text')} "
                f"{details.get('exception', {}).get('description', '')}".strip()
            )
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            errors.append(
                "console: " + " ".join(str(a.get("value", a.get("description"))) for a in args)
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


class LivePage:
    """A page kept open in headless Chromium, for driving a web app (JupyterLab) step by
    step: :meth:`evaluate` JavaScript, :meth:`wait_until` a condition holds.

    >>> with LivePage("http://127.0.0.1:8888/lab?token=...") as page:  # doctest: +SKIP
    ...     page.wait_until("document.querySelector('.jp-Notebook') !== null", 120)
    """

    def __init__(self, url: str, timeout: float = 60) -> None:
        binary = find_chromium()
        if binary is None:
            raise ConfigError("no Chromium found", hint="apt-get install chromium")
        self.url = url
        self._profile = tempfile.mkdtemp(prefix="opsbook-chromium-")
        self._proc = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self._profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self._cdp = _CDP(_devtools_url(self._proc, timeout))
            target = self._cdp.send("Target.createTarget", {"url": "about:blank"})
            self._session = self._cdp.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )["sessionId"]
            for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
                self._cdp.send(domain, session=self._session)
            self._cdp.send("Page.navigate", {"url": url}, session=self._session)
            self._cdp.wait_for("Page.loadEventFired", timeout)
        except BaseException:
            self.close()
            raise

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """Value of a JavaScript expression (promises are awaited)."""
        result = self._cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self._session,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(
                f"{details.get('text')}: {details.get('exception', {}).get('description')}"
            )
        return result.get("result", {}).get("value")

    def wait_until(self, condition: str, timeout: float, every: float = 0.5) -> bool:
        """Poll ``condition`` (a JavaScript expression) until it is truthy; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(condition):
                    return True
            except RuntimeError:
                pass  # the app is still loading
            time.sleep(every)
        return False

    def console_errors(self) -> list[str]:
        return _errors(self._cdp.events)

    def close(self) -> None:
        if getattr(self, "_cdp", None) is not None:
            self._cdp.close()
        self._proc.kill()
        self._proc.wait(timeout=10)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> LivePage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
