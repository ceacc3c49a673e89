"""End-to-end tests of the ids service on the real binary: uniqueness across processes and
restarts, clock safety with faketime, graceful shutdown, bad input, and the HTTP basics."""

import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import requests

from harness import Evo, EVO, is_problem, npm_tool, raw_request, status_of


def assert_increasing(test, ids):
    for a, b in zip(ids, ids[1:]):
        test.assertLess(a, b)


class TwoProcesses(unittest.TestCase):
    def test_two_workers_serve_200k_unique_increasing_ids(self):
        with tempfile.TemporaryDirectory() as shared:
            # Two ids-only processes in one data dir (only they may share one): the file
            # lease must give them different workers.
            a = Evo(data_dir=shared, args=["--modules", "ids"])
            b = Evo(data_dir=shared, args=["--modules", "ids"])
            try:
                per_process = {a: [], b: []}

                def fetch(proc, n_requests, count):
                    s = requests.Session()
                    out = []
                    for _ in range(n_requests):
                        r = s.get(proc.url("/v1/ids"), params={"count": count}, timeout=10)
                        assert r.status_code == 200, r.text
                        out.extend(int(x) for x in r.json()["ids"])
                    return out

                with concurrent.futures.ThreadPoolExecutor(4) as pool:
                    # batches plus a stream of single IDs, interleaved across both processes
                    fa = pool.submit(fetch, a, 99, 1000)
                    fb = pool.submit(fetch, b, 99, 1000)
                    fa1 = pool.submit(fetch, a, 1000, 1)
                    fb1 = pool.submit(fetch, b, 1000, 1)
                    batches_a, batches_b = fa.result(), fb.result()
                    singles_a, singles_b = fa1.result(), fb1.result()
                per_process[a] = batches_a
                per_process[b] = batches_b
                everything = batches_a + batches_b + singles_a + singles_b
                self.assertEqual(len(everything), 200_000)
                self.assertEqual(len(set(everything)), 200_000, "duplicate IDs across processes")
                # each stream a client saw from one process is increasing
                for stream in (batches_a, batches_b, singles_a, singles_b):
                    assert_increasing(self, stream)
                wa = {int(a.get("/v1/ids/%d" % i).json()["workerId"]) for i in batches_a[:1]}
                wb = {int(b.get("/v1/ids/%d" % i).json()["workerId"]) for i in batches_b[:1]}
                self.assertNotEqual(wa, wb)
            finally:
                a.cleanup()
                b.cleanup()


class Restarts(unittest.TestCase):
    def test_kill_9_then_restart_only_issues_greater_ids(self):
        with tempfile.TemporaryDirectory() as d:
            evo = Evo(data_dir=d, args=["--worker-id", "7"])
            before = evo.ids(5000)
            before += evo.ids(1)
            evo.kill()
            evo = Evo(data_dir=d, args=["--worker-id", "7"])
            try:
                after = evo.ids(5000)
                self.assertGreater(min(after), max(before))
            finally:
                evo.cleanup()

    def test_clock_set_back_one_hour_across_restart(self):
        libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
        if not os.path.exists(libfaketime):
            self.skipTest("libfaketime not installed")
        with tempfile.TemporaryDirectory() as d:
            evo = Evo(data_dir=d, args=["--worker-id", "3"])
            before = evo.ids(1000)
            self.assertEqual(evo.terminate(), 0)

            # One hour back: far beyond --max-start-gap, so the service starts but stays
            # not ready, refuses IDs with 503 + Retry-After, and says why in the log.
            # libfaketime preloaded directly (not the faketime wrapper, which would stand
            # between the test and evo's signals).
            late = Evo(data_dir=d, args=["--worker-id", "3"],
                       env={"LD_PRELOAD": libfaketime, "FAKETIME": "-1h"}, wait_ready=False)
            try:
                time.sleep(0.5)
                ready = late.get("/readyz")
                self.assertEqual(ready.status_code, 503, ready.text)
                r = late.get("/v1/ids")
                self.assertEqual(r.status_code, 503)
                self.assertTrue(is_problem(r))
                self.assertGreaterEqual(int(r.headers["Retry-After"]), 3000)
                self.assertIn("behind the high-water mark", late.log())
                self.assertEqual(late.get("/livez").status_code, 200)
            finally:
                late.cleanup()

            # Back to the right time: ready again and still above everything issued.
            evo = Evo(data_dir=d, args=["--worker-id", "3"])
            try:
                self.assertGreater(min(evo.ids(1000)), max(before))
            finally:
                evo.cleanup()


class Shutdown(unittest.TestCase):
    def test_sigterm_during_load_completes_in_flight_and_exits_0(self):
        evo = Evo(args=["--shutdown-timeout", "10s"])
        try:
            stop = threading.Event()
            completed = []
            broken = []

            def load():
                s = requests.Session()
                while not stop.is_set():
                    try:
                        r = s.get(evo.url("/v1/ids"), params={"count": 10000}, timeout=10)
                    except requests.ConnectionError as e:
                        # Refused, reset while connecting (the listener closed with the
                        # connection still in its backlog) or closed before a response
                        # started: not an in-flight loss.
                        if "Connection refused" in str(e) or "RemoteDisconnected" in str(e) \
                                or "Connection aborted" in str(e) \
                                or "NewConnectionError" in str(e):
                            return
                        broken.append(repr(e))
                        return
                    except requests.RequestException as e:
                        broken.append(repr(e))
                        return
                    if r.status_code == 503:
                        return  # draining
                    # urllib3 1.x does not enforce Content-Length: check it here, so a
                    # response cut short by the shutdown counts as broken.
                    try:
                        whole = len(r.content) == int(r.headers["Content-Length"])
                        ok = r.status_code == 200 and whole and len(r.json()["ids"]) == 10000
                    except ValueError as e:
                        ok = False
                        r.reason = repr(e)
                    if not ok:
                        broken.append((r.status_code, len(r.content), r.reason))
                        return
                    completed.append(1)

            threads = [threading.Thread(target=load) for _ in range(8)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            rc = evo.terminate(timeout=20)
            stop.set()
            for t in threads:
                t.join(20)
            self.assertEqual(rc, 0, evo.log())
            self.assertEqual(broken, [])
            self.assertGreater(len(completed), 0)
            self.assertIn("draining", evo.log())
        finally:
            evo.cleanup()


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.evo = Evo()

    @classmethod
    def tearDownClass(cls):
        cls.evo.cleanup()

    def tearDown(self):
        self.assertEqual(self.evo.get("/livez").status_code, 200)

    def test_bad_counts_are_400_problems(self):
        for bad in ["0", "-1", "10001", "1e99", "abc", "", " 1", "0x10", "99999999999999999999"]:
            r = self.evo.get("/v1/ids", params={"count": bad})
            self.assertEqual(r.status_code, 400, bad)
            self.assertTrue(is_problem(r), r.text)
            self.assertEqual(r.json()["code"], "INVALID_ARGUMENT")
        r = self.evo.get("/v1/ids?count=1&count=2")
        self.assertEqual(r.status_code, 400)
        r = self.evo.get("/v1/ids", params={"format": "roman"})
        self.assertEqual(r.status_code, 400)

    def test_bad_ids_to_decode(self):
        for bad, codes in [("zzz", (400,)), ("1" * 21, (400,)), ("%FF", (400,)),
                           ("a" * 1000, (400,)), ("a" * 10000, (400, 414))]:
            r = self.evo.get("/v1/ids/" + bad)
            self.assertIn(r.status_code, codes, bad[:30])
            self.assertTrue(is_problem(r), r.text)
        # A well-formed ID from far in the future cannot have been issued by this layout.
        r = self.evo.get("/v1/ids/%d" % ((1 << 62) + 5))
        self.assertEqual(r.status_code, 422, r.text)
        self.assertTrue(is_problem(r))

    def test_two_mib_body_is_413(self):
        r = self.evo.post("/v1/ids:decode", data=b"x" * (2 << 20),
                          headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, 413)
        self.assertTrue(is_problem(r))

    def test_json_body_errors(self):
        r = self.evo.post("/v1/ids:decode", data=b'{"ids": [', headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, 400)
        self.assertTrue(is_problem(r))
        r = self.evo.post("/v1/ids:decode", data=b'{"ids": []}', headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status_code, 415)
        self.assertTrue(is_problem(r))
        r = self.evo.post("/v1/ids:decode", data=b'[]', headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, 400)
        r = self.evo.post("/v1/ids:decode", json={"ids": ["1", 5]})
        self.assertEqual(r.status_code, 400)

    def test_unknown_route_and_wrong_method(self):
        r = self.evo.get("/v1/nope")
        self.assertEqual(r.status_code, 404)
        self.assertTrue(is_problem(r))
        r = self.evo.session.delete(self.evo.url("/v1/ids"))
        self.assertEqual(r.status_code, 405)
        self.assertIn("GET", r.headers["Allow"])
        self.assertTrue(is_problem(r))

    def test_path_traversal_is_404(self):
        for path in ["/v1/ids/..%2F..%2Fetc%2Fpasswd", "/openapi.json/..", "/%2e%2e/etc/passwd"]:
            raw = raw_request(self.evo.port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode(),
                              read_all=False)
            self.assertIn(status_of(raw), (400, 404), path)
            self.assertNotIn(b"root:", raw)

    def test_request_smuggling_shapes_are_400(self):
        raw = raw_request(self.evo.port, b"GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        self.assertEqual(status_of(raw), 400)
        raw = raw_request(self.evo.port, b"GET /livez HTTP/1.1\r\n\r\n")
        self.assertEqual(status_of(raw), 400)  # no Host
        for cl in (b"-1", b"99999999999999999999", b"5\r\nContent-Length: 6"):
            raw = raw_request(self.evo.port, b"POST /v1/ids:decode HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\nContent-Length: " + cl +
                              b"\r\n\r\n{}")
            self.assertEqual(status_of(raw), 400, cl)

    def test_oversize_expect_100_continue_is_413_without_the_body(self):
        raw = raw_request(self.evo.port, b"POST /v1/ids:decode HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                          b"Content-Length: 99999999\r\n\r\n", read_all=False)
        self.assertEqual(status_of(raw), 413)

    def test_hostile_query_and_path_bytes(self):
        for path in ["/v1/ids?format=%FF%FE", "/v1/ids?count=%00", "/v1/ids/12%00",
                     "/v1/ids/a%2Fb"]:
            r = self.evo.get(path)
            self.assertEqual(r.status_code, 400, path)
            self.assertTrue(is_problem(r))
        # unknown query parameters are ignored (documented)
        self.assertEqual(self.evo.get("/v1/ids?foo=bar").status_code, 200)
        r = self.evo.session.request("BREW", self.evo.url("/v1/ids"))
        self.assertIn(r.status_code, (405, 501))

    def test_json_injection_shapes_and_bad_utf8(self):
        for body in [b'{"ids":["1"],"ids":["2"]}', b'{"ids":["\xff"]}', b'{"ids":[{"$gt":""}]}',
                     b'{"ids":["1 OR 1=1"]}', b'[' * 60000, b'{"ids":["\\ud800"]}',
                     b'{"ids":[1e400]}', b'{}x']:
            r = self.evo.post("/v1/ids:decode", data=body,
                              headers={"Content-Type": "application/json"})
            self.assertEqual(r.status_code, 400, body[:40])
            self.assertTrue(is_problem(r))

    def test_bad_traceparent_is_ignored(self):
        for tp in ["00-ABCDEF0123456789ABCDEF0123456789-00f067aa0ba902b7-01",
                   "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                   "00-4bf92f3577b34da6a3ce929d0e0e4736-01", "x" * 10000]:
            r = self.evo.get("/livez", headers={"traceparent": tp})
            self.assertEqual(r.status_code, 200)
            if len(tp) < 100:  # an invalid parent is not continued: a new trace starts
                self.assertNotIn(tp[3:35].lower(), r.headers["traceparent"])
            self.assertRegex(r.headers["traceparent"], r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$")


class SlowClients(unittest.TestCase):
    def test_slowloris_is_cut_off_and_probes_keep_answering(self):
        import socket
        evo = Evo(args=["--header-timeout", "2s"])
        slow = []
        try:
            for _ in range(200):
                s = socket.create_connection(("127.0.0.1", evo.port), timeout=10)
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                slow.append(s)
            # While 200 connections dribble headers, a probe is answered at once.
            started = time.time()
            r = requests.get(evo.url("/livez"), timeout=3)
            self.assertEqual(r.status_code, 200)
            self.assertLess(time.time() - started, 3)
            # After the header timeout the server has closed them (recv sees EOF or a reset).
            time.sleep(2.5)
            closed = 0
            for s in slow:
                s.settimeout(2)
                try:
                    while s.recv(1024):  # a 408 answer may come before the close
                        pass
                    closed += 1
                except ConnectionResetError:
                    closed += 1
                except socket.timeout:
                    pass  # still open: the server did not enforce the header timeout
            self.assertEqual(closed, 200)
            self.assertEqual(evo.get("/livez").status_code, 200)
        finally:
            for s in slow:
                s.close()
            evo.cleanup()


class HttpBasics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.evo = Evo()

    @classmethod
    def tearDownClass(cls):
        cls.evo.cleanup()

    def test_formats_and_decode(self):
        for fmt, pattern in [("decimal", r"^\d+$"), ("base32", r"^[0-9A-HJKMNP-TV-Z]{13}$"),
                             ("hex", r"^[0-9a-f]{16}$")]:
            r = self.evo.get("/v1/ids", params={"count": 3, "format": fmt})
            self.assertEqual(r.status_code, 200)
            self.assertEqual(r.headers["Cache-Control"], "no-store")
            ids = r.json()["ids"]
            self.assertEqual(len(ids), 3)
            for i in ids:
                self.assertRegex(i, pattern)
                # The format is named: a hex ID made of digits only ("0381013341400000")
                # would otherwise be read as decimal, as documented.
                d = self.evo.get("/v1/ids/" + i, params={"format": fmt})
                self.assertEqual(d.status_code, 200, d.text)
                body = d.json()
                self.assertEqual(body["formats"][fmt], i)
                if fmt != "decimal":
                    self.assertEqual(self.evo.get("/v1/ids/" + body["formats"]["decimal"]).json()
                                     ["formats"][fmt], i)
                self.assertRegex(body["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(sorted(ids), ids)

    def test_text_plain(self):
        r = self.evo.get("/v1/ids", params={"count": 4}, headers={"Accept": "text/plain"})
        self.assertEqual(r.status_code, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(len(r.text.strip().split("\n")), 4)

    def test_uuids_and_ulids(self):
        u = self.evo.get("/v1/uuids", params={"count": 5}).json()["uuids"]
        for x in u:
            self.assertRegex(x, r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertEqual(sorted(u), u)
        ul = self.evo.get("/v1/ulids", params={"count": 5}).json()["ulids"]
        for x in ul:
            self.assertRegex(x, r"^[0-9A-HJKMNP-TV-Z]{26}$")
        self.assertEqual(sorted(ul), ul)

    def test_request_id_is_echoed_or_generated(self):
        r = self.evo.get("/v1/ids", headers={"X-Request-Id": "abc-123"})
        self.assertEqual(r.headers["X-Request-Id"], "abc-123")
        r = self.evo.get("/v1/ids")
        self.assertTrue(len(r.headers["X-Request-Id"]) >= 8)

    def test_traceparent_is_continued_and_logged(self):
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        r = self.evo.get("/livez", headers={"traceparent": "00-%s-00f067aa0ba902b7-01" % trace})
        self.assertTrue(r.headers["traceparent"].startswith("00-%s-" % trace))
        deadline = time.time() + 5
        while trace not in self.evo.log() and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn(trace, self.evo.log())
        # an invalid one starts a new trace instead of being echoed
        r = self.evo.get("/livez", headers={"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"})
        self.assertEqual(r.status_code, 200)
        self.assertNotIn("0" * 32, r.headers["traceparent"])

    def test_metrics_pass_promtool(self):
        self.evo.ids(10)
        r = self.evo.get("/metrics")
        self.assertEqual(r.status_code, 200)
        self.assertIn("evo_ids_issued_total", r.text)
        self.assertIn('evo_http_requests_total{route="/v1/ids",method="GET",code="200"}', r.text)
        if shutil.which("promtool"):
            p = subprocess.run(["promtool", "check", "metrics"], input=r.text, text=True,
                               capture_output=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        from prometheus_client.parser import text_string_to_metric_families
        names = {f.name for f in text_string_to_metric_families(r.text)}
        self.assertIn("evo_ids_issued", names)

    def test_openapi_is_a_valid_3_1_document(self):
        tool = npm_tool("openapi-check")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(self.evo.get("/openapi.json").text)
        try:
            p = subprocess.run(["node", os.path.join(tool, "check.mjs"), f.name],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        finally:
            os.unlink(f.name)

    def test_openapi_describes_every_route(self):
        doc = self.evo.get("/openapi.json").json()
        self.assertTrue(doc["openapi"].startswith("3.1"))
        for path in ["/v1/ids", "/v1/ids/{id}", "/v1/ids:decode", "/v1/uuids", "/v1/ulids",
                     "/livez", "/readyz", "/metrics", "/openapi.json"]:
            self.assertIn(path, doc["paths"])

    def test_head_and_options(self):
        r = self.evo.session.head(self.evo.url("/livez"))
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content, b"")
        r = self.evo.session.options(self.evo.url("/v1/ids"))
        self.assertEqual(r.status_code, 204)
        self.assertIn("GET", r.headers["Allow"])


class Cli(unittest.TestCase):
    def run_evo(self, *args):
        return subprocess.run([EVO] + list(args), capture_output=True, text=True, timeout=30)

    def test_layout(self):
        p = self.run_evo("id", "layout")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("4096000 IDs/s per worker", p.stdout)
        self.assertIn("2094-", p.stdout)

    def test_new_and_decode(self):
        with tempfile.TemporaryDirectory() as d:
            p = self.run_evo("id", "new", "-n", "3", "--format", "base32", "--data-dir", d)
            self.assertEqual(p.returncode, 0, p.stderr)
            ids = p.stdout.split()
            self.assertEqual(len(ids), 3)
            q = self.run_evo("id", "decode", *ids)
            self.assertEqual(q.returncode, 0, q.stderr)
            self.assertEqual(len(q.stdout.strip().split("\n")), 3)
            self.assertIn("worker=0", q.stdout)

    def test_bad_cli_input_exits_nonzero_with_message(self):
        p = self.run_evo("id", "decode", "zzz")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("zzz", p.stderr)
        # (arguments, expected exit code or None for "any non-zero", flag named in the message)
        for args, code, flag in [(["--max-borrow", "soon"], 2, "--max-borrow"),
                                 (["--id-worker-bits", "30"], 2, "--id-worker-bits"),
                                 (["--modules", "nope"], 2, "--modules"),
                                 (["--threads", "-3"], 2, "--threads"),
                                 (["--no-such-flag"], 2, "--no-such-flag")]:
            p = self.run_evo("serve", *args)
            if code is None:
                self.assertNotEqual(p.returncode, 0, args)
            else:
                self.assertEqual(p.returncode, code, args)
            self.assertIn(flag, p.stderr)

    def test_config_file_and_environment(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "evo.toml")
            with open(cfg, "w") as f:
                f.write('id-tick = "10ms"\nid-sequence-bits = 8\nid-timestamp-bits = 39\n'
                        'id-worker-bits = 16\n')
            p = self.run_evo("id", "layout", "--config", cfg)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("25600 IDs/s per worker", p.stdout)
            # Precedence: flag > config file > environment > default.
            env = dict(os.environ, EVO_ID_SEQUENCE_BITS="9", EVO_ID_TIMESTAMP_BITS="38",
                       EVO_ID_TICK="1ms", EVO_ID_WORKER_BITS="16")
            p = subprocess.run([EVO, "id", "layout"], capture_output=True, text=True, env=env,
                               timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("512000 IDs/s per worker", p.stdout)
            p = subprocess.run([EVO, "id", "layout", "--config", cfg, "--id-sequence-bits", "9",
                                "--id-timestamp-bits", "38"], capture_output=True, text=True,
                               env=env, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("51200 IDs/s per worker", p.stdout)
            with open(cfg, "w") as f:
                f.write('max-borrow = "whenever"\n')
            p = self.run_evo("serve", "--config", cfg, "--data-dir", d)
            self.assertEqual(p.returncode, 2)
            self.assertIn("--max-borrow", p.stderr)


if __name__ == "__main__":
    unittest.main()
