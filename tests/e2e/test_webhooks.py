"""End-to-end tests of the webhook server: the real binary, real receivers on loopback — the
`standardwebhooks` npm package (Node.js) checking every signature, and `evo webhooks listen`
— and real kill -9. Nothing is mocked.
"""

import concurrent.futures
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

from harness import EVO, Evo, is_problem

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NODE_RECEIVER = os.path.join(ROOT, "tools", "standardwebhooks", "receiver.mjs")
ALLOW = ["--modules", "webhooks", "--webhooks-allow-cidr", "127.0.0.1/32"]


def wait_for(predicate, timeout=30, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class Receiver:
    """A receiving process that prints its port on its first line of output."""

    def __init__(self, cmd, pattern):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(pattern, line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("receiver did not start: %s" % cmd)
        # Keep draining its output so that it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stats(self):
        return requests.get(self.url("/stats"), timeout=5).json()

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


def node_receiver(*secrets):
    return Receiver(["node", NODE_RECEIVER, "0"] + list(secrets), r"listening (\d+)")


def secret_and_node_receiver(evo):
    """A secret evo generated (from a probe endpoint, deleted again) and a Node receiver
    verifying with it."""
    probe = evo.post("/v1/endpoints", json={"url": "http://127.0.0.1:9/x", "verify": False})
    secret = probe.json()["secret"]
    evo.session.delete(evo.url("/v1/endpoints/" + probe.json()["id"]))
    return node_receiver(secret), secret


def evo_listener(*args):
    return Receiver([EVO, "webhooks", "listen", "--port", "0", "--quiet"] + list(args),
                    r"receiving on port (\d+)")


def create_endpoint(evo, **body):
    r = evo.post("/v1/endpoints", json=body, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


class Delivery(unittest.TestCase):
    def test_signed_deliveries_verify_with_the_standardwebhooks_package(self):
        with Evo(args=ALLOW) as evo:
            r = evo.post("/v1/event-types", json={
                "name": "invoice.paid", "description": "An invoice was paid",
                "schema": {"type": "object", "required": ["amount"],
                           "properties": {"amount": {"type": "number", "minimum": 0}}}})
            self.assertEqual(r.status_code, 201, r.text)
            node, secret = secret_and_node_receiver(evo)
            try:
                ep = create_endpoint(evo, url=node.url(), eventTypes=["invoice.paid"],
                                     secret=secret)
                self.assertEqual(ep["state"], "active", ep)  # Node echoed the challenge
                ids = []
                for i in range(50):
                    r = evo.post("/v1/messages", json={"eventType": "invoice.paid",
                                                       "payload": {"amount": i}})
                    self.assertEqual(r.status_code, 202, r.text)
                    ids.append(r.json()["id"])
                stats = wait_for(lambda: (lambda s: s if s["distinct"] == 50 else None)(
                    node.stats()))
                self.assertIsNotNone(stats, node.stats())
                self.assertEqual(stats["bad"], 0, stats)
                self.assertEqual(stats["verified"], 51)  # 50 events + the handshake
                # The API shows the message and its successful attempt.
                msg = wait_for(lambda: evo.get("/v1/messages/" + ids[0]).ok)
                self.assertTrue(msg)
                self.assertEqual(evo.get("/v1/messages/" + ids[0]).json()["payload"],
                                 {"amount": 0})
                attempts = wait_for(lambda: evo.get(
                    "/v1/messages/%s/attempts" % ids[0]).json()["attempts"])
                self.assertEqual(attempts[0]["outcome"], "succeeded")
                self.assertEqual(attempts[0]["responseStatus"], 204)
                self.assertIn("webhook-signature", attempts[0]["requestHeaders"])
                listed = evo.get("/v1/endpoints/%s/attempts?pageSize=10" % ep["id"]).json()
                self.assertEqual(len(listed["attempts"]), 10)
                self.assertIn("nextPageToken", listed)
            finally:
                node.stop()

    def test_nul_in_a_payload_arrives_byte_exact_and_verifies(self):
        # RFC 8259 allows \u0000; in a payload it is data (BAD_INPUTS.md). The signature is
        # checked by the standardwebhooks package over the bytes that arrived.
        with Evo(args=ALLOW) as evo:
            evo.post("/v1/event-types", json={"name": "blob"})
            node, secret = secret_and_node_receiver(evo)
            try:
                create_endpoint(evo, url=node.url(), secret=secret, verify=False)
                payload = {"a": "x\u0000y", "k\u0000": ["\u0000"], "n": 1}
                raw = '{"eventType":"blob","payload":{"a":"x\\u0000y","k\\u0000":["\\u0000"],"n":1}}'
                r = evo.post("/v1/messages", data=raw,
                             headers={"Content-Type": "application/json"})
                self.assertEqual(r.status_code, 202, r.text)
                mid = r.json()["id"]
                self.assertTrue(wait_for(lambda: evo.get("/v1/messages/" + mid).ok))
                self.assertEqual(evo.get("/v1/messages/" + mid).json()["payload"], payload)
                stats = wait_for(lambda: (lambda s: s if s["distinct"] == 1 else None)(
                    node.stats()))
                self.assertIsNotNone(stats, node.stats())
                self.assertEqual(stats["bad"], 0, stats)
                body = requests.get(node.url("/bodies"), timeout=5).json()[-1]
                self.assertEqual(json.loads(body)["data"], payload)
                self.assertIn('"x\\u0000y"', body)
            finally:
                node.stop()

    def test_nul_in_a_name_id_or_key_is_400(self):
        with Evo(args=ALLOW) as evo:
            evo.post("/v1/event-types", json={"name": "e"})
            cases = [
                ("/v1/event-types", {"name": "a\u0000b"}, "#/name"),
                ("/v1/endpoints", {"url": "https://example.com/\u0000", "verify": False}, "#/url"),
                ("/v1/endpoints", {"url": "https://example.com/x", "eventTypes": ["e\u0000"]},
                 "#/eventTypes/0"),
                ("/v1/endpoints", {"url": "https://example.com/x", "headers": {"X-A": "1\u00002"}},
                 "#/headers/X-A"),
                ("/v1/messages", {"eventType": "e\u0000", "payload": {}}, "#/eventType"),
                ("/v1/messages", {"eventType": "e", "eventId": "k\u0000", "payload": {}},
                 "#/eventId"),
                ("/v1/applications", {"name": "a", "uid": "u\u0000"}, "#/uid"),
            ]
            for path, body, pointer in cases:
                r = evo.post(path, json=body)
                self.assertEqual(r.status_code, 400, "%s %s -> %s" % (path, body, r.text))
                self.assertTrue(is_problem(r), r.text)
                self.assertEqual(r.json().get("reason"), "INVALID_CHARACTER", r.text)
                self.assertEqual(r.json()["errors"][0]["pointer"], pointer, r.text)
            self.assertEqual(evo.get("/v1/endpoints").json()["endpoints"], [])
            self.assertEqual(evo.get("/v1/applications").json()["applications"], [])

    def test_idempotent_publish_under_1000_concurrent_repeats(self):
        with Evo(args=ALLOW) as evo:
            evo.post("/v1/event-types", json={"name": "e"})

            def publish(_):
                r = requests.post(evo.url("/v1/messages"), json={"eventType": "e", "payload": 1},
                                  headers={"Idempotency-Key": "order-42"}, timeout=30)
                return r.status_code, r.json().get("id")

            with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
                answers = list(pool.map(publish, range(1000)))
            self.assertEqual({code for code, _ in answers}, {202})
            self.assertEqual(len({mid for _, mid in answers}), 1)
            time.sleep(0.5)
            msgs = evo.get("/v1/messages").json()["messages"]
            self.assertEqual(len([m for m in msgs if m["eventType"] == "e"]), 1)


class BadInput(unittest.TestCase):
    def test_bad_requests_get_4xx_and_store_nothing(self):
        with Evo(args=["--modules", "webhooks"]) as evo:
            evo.post("/v1/event-types", json={"name": "e", "schema": {"type": "object"}})
            cases = [
                ("/v1/endpoints", {"url": "not a url"}, 400),
                ("/v1/endpoints", {"url": "ftp://example.com/x"}, 400),
                ("/v1/endpoints", {"url": "http://127.0.0.1:8080/x"}, 400),     # SSRF guard
                ("/v1/endpoints", {"url": "http://2130706433/x"}, 400),        # decimal IP
                ("/v1/endpoints", {"url": "http://0177.0.0.1/x"}, 400),        # octal IP
                ("/v1/endpoints", {"url": "http://[::ffff:10.0.0.1]/x"}, 400),  # mapped IPv6
                ("/v1/endpoints", {"url": "https://example.com/x", "filter": {"a": 1}}, 400),
                ("/v1/endpoints", {"url": "https://example.com/x", "filter": {"/a": {"$x": 1}}},
                 400),
                ("/v1/endpoints", {"url": "https://example.com/x", "eventTypes": ["nope"]}, 400),
                ("/v1/endpoints", {"url": "https://example.com/x", "secret": "whsec_!!"}, 400),
                ("/v1/endpoints", {"url": "https://example.com/x", "maxConcurrency": 0}, 400),
                ("/v1/endpoints", {"url": "https://example.com/x", "headers": {"X A": "1"}}, 400),
                ("/v1/endpoints", {"url": "https://example.com/x", "headers": {"X(": "1"}}, 400),
                ("/v1/endpoints", {"url": "https://example.com/x", "headers": {"X-A": "1\r\nX-B: 2"}},
                 400),
                ("/v1/messages", {"eventType": "nope", "payload": {}}, 422),
                ("/v1/messages", {"eventType": "e", "payload": [1]}, 422),      # schema
                ("/v1/messages", {"eventType": "e"}, 400),
                ("/v1/messages", {"eventType": "e", "payload": {"x": "y" * 300000}}, 413),
                ("/v1/event-types", {"name": "bad name"}, 400),
                ("/v1/event-types", {"name": "s", "schema": {"type": 5}}, 400),
            ]
            for path, body, want in cases:
                r = evo.post(path, json=body, timeout=30)
                self.assertEqual(r.status_code, want, "%s %s -> %s" % (path, body, r.text))
                self.assertTrue(is_problem(r), r.text)
            self.assertEqual(evo.get("/v1/endpoints").json()["endpoints"], [])
            time.sleep(0.3)
            self.assertEqual(evo.get("/v1/messages").json()["messages"], [])
            self.assertEqual(evo.get("/v1/endpoints/ep_1").status_code, 404)
            r = evo.post("/v1/endpoints/ep_1:recover", json={"since": "yesterday"})
            self.assertEqual(r.status_code, 400)


class InternalQueues(unittest.TestCase):
    """The webhooks module's queues are its internal state (security review D1/D2): the public
    queue API neither lists, reads, writes, deletes nor redrives them."""

    def test_internal_queues_are_not_reachable_through_the_queue_api(self):
        with Evo(args=["--modules", "queue,webhooks"] + ALLOW[2:]) as evo:
            listener = evo_listener()
            try:
                evo.post("/v1/event-types", json={"name": "t.x"})
                ep = create_endpoint(evo, url=listener.url(), verify=False)
                names = [q["name"] for q in evo.get("/v1/queues").json()["queues"]]
                self.assertEqual([n for n in names if n.startswith("webhooks.")], [], names)
                for q in ["webhooks.fanout", "webhooks.ep." + ep["id"], "webhooks.new"]:
                    for method, path, body in [
                            ("GET", "", None), ("DELETE", "", None),
                            ("POST", "/messages", {"payload": {"t": 1}}),
                            ("POST", "/messages", {"messages": [{"payload": {"e": []}}]}),
                            ("POST", "/leases", {"max": 10}),
                            ("POST", "/leases/00000000000000ff-1:ack", None),
                            ("GET", "/dead-letters", None),
                            ("POST", "/dead-letters:redrive", {}),
                            ("DELETE", "/dead-letters", None)]:
                        r = evo.session.request(method, evo.url("/v1/queues/" + q + path),
                                                json=body, timeout=10)
                        self.assertEqual(r.status_code, 404, "%s %s%s -> %s"
                                         % (method, q, path, r.text))
                        self.assertTrue(is_problem(r), r.text)
                    r = evo.session.put(evo.url("/v1/queues/" + q), json={}, timeout=10)
                    self.assertEqual(r.status_code, 403, r.text)
                    self.assertEqual(r.json()["reason"], "RESERVED_QUEUE_NAME", r.text)
                # Publishing and delivery still work, and the server is up.
                r = evo.post("/v1/messages", json={"eventType": "t.x", "payload": {"a": 1}})
                self.assertEqual(r.status_code, 202, r.text)
                self.assertTrue(wait_for(lambda: listener.stats()["distinct"] == 1))
                self.assertEqual(evo.get("/livez").status_code, 200)
                # Operators still see them from the CLI, read-only.
                out = subprocess.run([EVO, "queue", "ls", "--data-dir", evo.data_dir],
                                     capture_output=True, text=True, timeout=30)
                self.assertIn("webhooks.fanout", out.stdout, out.stderr)
            finally:
                listener.stop()


class HostileReceivers(unittest.TestCase):
    def test_a_non_string_challenge_fails_the_handshake_with_an_answer(self):
        # Security review: {"challenge": 1} made POST /v1/endpoints close with no answer.
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            answer = b'{"challenge": 1}'

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(self.answer)))
                self.end_headers()
                self.wfile.write(self.answer)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with Evo(args=ALLOW) as evo:
                for answer in [b'{"challenge": 1}', b'{"challenge": null}', b'[]', b'nope']:
                    Handler.answer = answer
                    r = evo.post("/v1/endpoints", json={
                        "url": "http://127.0.0.1:%d/hook" % server.server_address[1]},
                        timeout=30)
                    self.assertEqual(r.status_code, 201, r.text)
                    self.assertEqual(r.json()["state"], "unverified", r.text)
                    self.assertIn("challenge", r.json()["verificationError"], r.text)
                self.assertEqual(evo.get("/livez").status_code, 200)
        finally:
            server.shutdown()

    def test_listen_answers_401_to_an_unsigned_body_whatever_its_type(self):
        listener = evo_listener("--secret", "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        try:
            for body in [{"type": 5}, {"type": None}, {"type": "a\nforged 204"}, [1]]:
                r = requests.post(listener.url(), json=body, timeout=10)
                self.assertEqual(r.status_code, 401, r.text)
        finally:
            listener.stop()


class FailedDeliveries(unittest.TestCase):
    """Durability review D4: failed deliveries were recorded after their dead letter,
    asynchronously, so kill -9 lost rows that :recover and the attempt listings read (143 of
    3431). Now every dead-lettered delivery is listed as failed and recoverable after kill -9,
    however soon after its dead letter the process dies."""

    N = 300

    def test_d4_dead_lettered_deliveries_are_failed_and_recoverable_after_kill_9(self):
        with tempfile.TemporaryDirectory(prefix="evo-e2e-webhooks-d4-") as data_dir:
            listener = evo_listener("--status", "400")  # permanent: failed at once
            evo = Evo(data_dir=data_dir,
                      args=ALLOW + ["--webhooks-retry-schedule", "1ms"])
            try:
                evo.post("/v1/event-types", json={"name": "doomed"})
                ep = create_endpoint(evo, url=listener.url(), verify=False, maxConcurrency=50)
                with concurrent.futures.ThreadPoolExecutor(8) as pool:
                    codes = list(pool.map(lambda n: requests.post(
                        evo.url("/v1/messages"),
                        json={"eventType": "doomed", "payload": {"n": n}},
                        timeout=30).status_code, range(self.N)))
                self.assertEqual(codes, [202] * self.N)
                # Watch the dead letters in queue.db itself and kill the moment they are all
                # there: nothing gets a moment to catch up after the last one.
                db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "queue.db"),
                                     uri=True, timeout=5)
                queue = "webhooks.ep." + ep["id"]

                def dead():
                    try:
                        return db.execute(
                            "SELECT count(*) FROM queue_dead_letters d JOIN queue_queues q "
                            "ON q.id = d.queue_id WHERE q.name = ?", (queue,)).fetchone()[0]
                    except sqlite3.OperationalError:
                        return 0

                self.assertTrue(wait_for(lambda: dead() >= self.N, timeout=120, interval=0.002),
                                "dead letters: %d" % dead())
                evo.kill()
                db.close()
                evo = Evo(data_dir=data_dir, args=ALLOW)
                r = evo.get("/v1/endpoints/%s/attempts" % ep["id"], params={"pageSize": 1000})
                self.assertEqual(r.status_code, 200, r.text)
                failed = {a["messageId"] for a in r.json()["attempts"] if a["outcome"] == "failed"}
                self.assertEqual(len(failed), self.N)
                r = evo.post("/v1/endpoints/%s:recover" % ep["id"],
                             json={"since": "2000-01-01T00:00:00Z"}, timeout=60)
                self.assertEqual(r.status_code, 202, r.text)
                self.assertEqual(r.json()["recovered"], self.N)
            finally:
                evo.kill()
                listener.stop()


class CrashSafety(unittest.TestCase):
    """Events published to 10 endpoints on `evo webhooks listen` while the server is killed
    with SIGKILL three times: every acknowledged event arrives at every endpoint; the
    listener counts distinct webhook-ids per endpoint to prove it."""

    TOTAL = int(os.environ.get("EVO_E2E_WEBHOOK_EVENTS", "100000"))
    ENDPOINTS = 10

    def setUp(self):
        self._dir = tempfile.TemporaryDirectory(prefix="evo-e2e-webhooks-")
        self.addCleanup(self._dir.cleanup)

    def test_kill_9_three_times_loses_no_acknowledged_event(self):
        data_dir = self._dir.name
        listener = evo_listener()
        evo = Evo(data_dir=data_dir, args=ALLOW)
        try:
            evo.post("/v1/event-types", json={"name": "tick"})
            for i in range(self.ENDPOINTS):
                create_endpoint(evo, url=listener.url("/ep%d" % i), verify=False,
                                maxConcurrency=20)
            state = {"base": evo.base}
            lock = threading.Lock()
            acked = set()
            next_n = {"n": 0}

            def producer():
                s = requests.Session()
                while True:
                    with lock:
                        n = next_n["n"]
                        if n >= self.TOTAL:
                            return
                        next_n["n"] += 1
                    while True:  # retried until acknowledged; idempotent by eventId
                        try:
                            r = s.post(state["base"] + "/v1/messages",
                                       json={"eventType": "tick", "payload": {"n": n},
                                             "eventId": "tick-%d" % n}, timeout=30)
                            if r.status_code == 202:
                                with lock:
                                    acked.add(r.json()["id"])
                                break
                        except requests.RequestException:
                            pass
                        time.sleep(0.05)

            threads = [threading.Thread(target=producer) for _ in range(8)]
            for t in threads:
                t.start()
            for k in range(3):
                time.sleep(3 + 2 * k)
                evo.kill()
                evo = Evo(data_dir=data_dir, args=ALLOW)
                with lock:
                    state["base"] = evo.base
            for t in threads:
                t.join(900)
            self.assertEqual(len(acked), self.TOTAL)

            def all_arrived():
                by_path = listener.stats()["byPath"]
                return all(by_path.get("/ep%d" % i, {}).get("distinct") == self.TOTAL
                           for i in range(self.ENDPOINTS))

            arrived = wait_for(all_arrived, timeout=900, interval=1)
            stats = listener.stats()
            print("\n%d events x %d endpoints, 3 kills: received %d, duplicates %d"
                  % (self.TOTAL, self.ENDPOINTS, stats["received"], stats["duplicates"]),
                  file=sys.stderr)
            self.assertTrue(arrived, json.dumps(stats["byPath"]))
            self.assertEqual(stats["badSignatures"], 0)
            # The listener timed every first arrival against the event's timestamp.
            lag = requests.get(listener.url("/latency"), timeout=30).json()
            self.assertEqual(lag["deliveries"]["n"], self.TOTAL * self.ENDPOINTS)
            self.assertEqual(lag["messages"]["n"], self.TOTAL)
            self.assertGreater(lag["deliveries"]["p50"], 0)
            self.assertLessEqual(lag["deliveries"]["p50"], lag["deliveries"]["max"])
        finally:
            evo.kill()
            listener.stop()


if __name__ == "__main__":
    unittest.main()
