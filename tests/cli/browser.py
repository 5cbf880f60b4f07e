"""browser.py — headless Chromium driven over the DevTools protocol, for
tests that check what a person sees in a page or an SVG.

Chromium is started with --remote-debugging-pipe: it reads protocol
messages (JSON, NUL-terminated) on its descriptor 3 and writes them on 4,
so no port, no network and no extra package is needed. Every call has a
time limit; the browser is killed when the session closes.

    with Browser() as b:
        page = b.open("file:///tmp/x.svg")
        b.eval(page, "document.title")
        b.screenshot(page, "/tmp/x.png")
"""
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser")
                 if os.path.exists(p)), None)


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, width=1300, height=900, timeout=30):
        if not CHROMIUM:
            raise BrowserError("no chromium")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="ap-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def fds():  # the browser's 3 and 4 (moved up first: the pipes may be 3 and 4)
            r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=" + self.profile, "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            preexec_fn=fds, close_fds=False,  # 3 and 4 are made in fds()
            start_new_session=True,  # its helpers (zygote, renderers) die with it in close()
            # its singleton socket directory goes into the profile, removed in close(),
            # not into /tmp, where 200 of them had piled up
            env=dict(os.environ, TMPDIR=self.profile),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.size = (width, height)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:  # the browser and every helper process it started
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait(timeout=10)
        for _ in range(50):  # a helper still exiting may write into the profile
            try:
                os.killpg(self.proc.pid, 0)
            except OSError:
                break
            time.sleep(0.05)
        for fd in (self.to_browser, self.from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                raise BrowserError("no answer from the browser in time")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise BrowserError("the browser closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, session=None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, name, session, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == name and m.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def open(self, url):
        """a new page with url loaded; returns its session"""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session)
        self.call("Runtime.enable", session)
        self.call("Network.enable", session)
        self.call("Emulation.setDeviceMetricsOverride", session, width=self.size[0],
                  height=self.size[1], deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", session, url=url)
        self.wait_event("Page.loadEventFired", session)
        return session

    def eval(self, session, expr):
        r = self.call("Runtime.evaluate", session, expression=expr, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, session, path, full=True):
        params = {"format": "png"}
        if full:
            params["captureBeyondViewport"] = True
            w, h = self.eval(session, "[document.documentElement.scrollWidth,"
                                      "document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
        data = self.call("Page.captureScreenshot", session, **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def console_errors(self, session):
        """console errors and exceptions seen so far on the page"""
        out = []
        for m in self.events:
            if m.get("sessionId") != session:
                continue
            if m.get("method") == "Runtime.exceptionThrown":
                out.append(m["params"]["exceptionDetails"].get("text", "exception"))
            if (m.get("method") == "Runtime.consoleAPICalled" and
                    m["params"].get("type") == "error"):
                out.append(str(m["params"].get("args")))
        return out

    def requests(self, session):
        """URLs the page asked for (Network.requestWillBeSent)"""
        return [m["params"]["request"]["url"] for m in self.events
                if m.get("sessionId") == session and
                m.get("method") == "Network.requestWillBeSent"]
