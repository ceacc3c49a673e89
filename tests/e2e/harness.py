"""Starts the real evo binary for end-to-end tests and talks to it over loopback.

Every test gets its own temporary data dir and a free port (``--listen 127.0.0.1:0``; the
port is read from the "listening on" log line). Nothing here mocks evo: tests use the
binary CI builds, real sockets, real signals and real files.
"""

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import requests

EVO = os.environ.get("EVO_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "evo"))
LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")
TOOLS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "tools"))


def npm_tool(name):
    """The directory of tools/<name>, an npm tool of the tests; AssertionError (a test failure)
    when its packages are missing (scripts/install-deps.sh runs `npm ci` there)."""
    tool = os.path.join(TOOLS, name)
    if not os.path.isdir(os.path.join(tool, "node_modules")):
        raise AssertionError("tools/%s is not installed (scripts/install-deps.sh does it)" % name)
    return tool


class Evo:
    """One `evo serve` process. Use as a context manager or call stop()."""

    def __init__(self, data_dir=None, args=(), env=None, prefix=(), wait_ready=True):
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="evo-e2e-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        self.log_lines = []
        self._log_lock = threading.Lock()
        cmd = list(prefix) + [EVO, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                              "--log-format", "text"] + list(args)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=full_env, text=True, errors="replace")
        self.port = None
        self._port_seen = threading.Event()
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._port_seen.wait(20):
            self.kill()
            raise RuntimeError("evo did not start:\n" + self.log())
        self.base = "http://127.0.0.1:%d" % self.port
        self.session = requests.Session()
        if wait_ready:
            self.wait_ready()

    def _read_log(self):
        for line in self.proc.stdout:
            with self._log_lock:
                self.log_lines.append(line.rstrip("\n"))
            m = LISTENING.search(line)
            if m and not self._port_seen.is_set():
                self.port = int(m.group(2))
                self._port_seen.set()

    def log(self):
        with self._log_lock:
            return "\n".join(self.log_lines)

    def url(self, path):
        return self.base + path

    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.get(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.post(self.url(path), **kw)

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.get("/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("evo not ready after %ss:\n%s" % (timeout, self.log()))

    def ids(self, count=1, fmt=None):
        params = {"count": count}
        if fmt:
            params["format"] = fmt
        r = self.get("/v1/ids", params=params)
        assert r.status_code == 200, (r.status_code, r.text)
        return [int(x) for x in r.json()["ids"]]

    def terminate(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def kill(self):
        """SIGKILL (kill -9) and wait."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()
        self.session.close()

    def cleanup(self):
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def raw_request(port, data, timeout=5.0, read_all=True):
    """Sends raw bytes on a fresh connection and returns what came back (bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
                if not read_all and b"\r\n\r\n" in b"".join(chunks):
                    break
        except socket.timeout:
            pass
        return b"".join(chunks)


def status_of(raw):
    """The status code of a raw HTTP/1.1 response (0 when none)."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else 0


def is_problem(response):
    """True when a requests.Response is an RFC 9457 problem with the fields evo promises."""
    if not response.headers.get("Content-Type", "").startswith("application/problem+json"):
        return False
    body = response.json()
    return all(k in body for k in ("type", "title", "status", "detail", "code")) and \
        body["status"] == response.status_code


def quote(s):
    return urllib.parse.quote(s, safe="")
