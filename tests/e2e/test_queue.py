"""End-to-end tests of the queue module: the HTTP producer/consumer/admin API and the CLI.

The real binary on loopback, real HTTP clients, real kill -9. Nothing is mocked.
"""

import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

from harness import EVO, Evo, is_problem


def declare(evo, name="jobs", **options):
    r = evo.session.put(evo.url("/v1/queues/" + name), json=options, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def enqueue(evo, body, name="jobs"):
    return evo.post("/v1/queues/%s/messages" % name, json=body)


def lease(evo, name="jobs", **body):
    r = evo.post("/v1/queues/%s/leases" % name, json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["leases"]


def queue_stats(evo, name="jobs"):
    r = evo.get("/v1/queues/" + name)
    assert r.status_code == 200, r.text
    return r.json()


class Basics(unittest.TestCase):
    def test_enqueue_lease_ack_nack_extend_over_http(self):
        with Evo(args=["--modules", "queue"]) as evo:
            q = declare(evo, maxAttempts=2, visibilitySeconds=30)
            self.assertEqual(q["maxAttempts"], 2)
            r = enqueue(evo, {"payload": {"order": 1}, "headers": {"trace": "abc"}})
            self.assertEqual(r.status_code, 201, r.text)
            first = r.json()["id"]
            r = enqueue(evo, {"messages": [{"payload": [1, 2]}, {"payload": "urgent",
                                                               "priority": "high"}]})
            self.assertEqual(r.status_code, 201, r.text)
            self.assertEqual(len(r.json()["ids"]), 2)
            got = lease(evo, max=10)
            self.assertEqual([m["payload"] for m in got], ["urgent", {"order": 1}, [1, 2]])
            self.assertEqual(got[1]["messageId"], first)
            self.assertEqual(got[1]["headers"], {"trace": "abc"})
            self.assertEqual(got[1]["attempt"], 1)
            self.assertEqual(lease(evo), [])  # everything is leased

            ack = evo.post("/v1/queues/jobs/leases/%s:ack" % got[0]["leaseId"])
            self.assertEqual(ack.status_code, 204)
            again = evo.post("/v1/queues/jobs/leases/%s:ack" % got[0]["leaseId"])
            self.assertEqual(again.status_code, 404)
            self.assertTrue(is_problem(again))

            ext = evo.post("/v1/queues/jobs/leases/%s:extend" % got[1]["leaseId"],
                           json={"visibilitySeconds": 60})
            self.assertEqual(ext.status_code, 200, ext.text)
            self.assertIn("leaseExpiresAt", ext.json())

            nack = evo.post("/v1/queues/jobs/leases/%s:nack" % got[2]["leaseId"],
                            json={"delaySeconds": 0, "error": "db down"})
            self.assertEqual(nack.status_code, 204)
            redelivered = lease(evo)
            self.assertEqual(len(redelivered), 1)
            self.assertEqual(redelivered[0]["attempt"], 2)
            # Second failure on the last attempt: dead letter with its history.
            evo.post("/v1/queues/jobs/leases/%s:nack" % redelivered[0]["leaseId"],
                     json={"error": "still down"})
            s = queue_stats(evo)
            self.assertEqual((s["depth"], s["deadLetters"], s["inFlight"]), (1, 1, 1))
            dead = evo.get("/v1/queues/jobs/dead-letters").json()["deadLetters"]
            self.assertEqual(len(dead), 1)
            self.assertEqual(dead[0]["lastError"], "still down")
            self.assertEqual([h["error"] for h in dead[0]["history"]], ["db down", "still down"])
            one = evo.get("/v1/queues/jobs/dead-letters/" + dead[0]["id"])
            self.assertEqual(one.json()["payload"], [1, 2])

            r = evo.post("/v1/queues/jobs/dead-letters:redrive", json={})
            self.assertEqual(r.json(), {"redriven": 1})
            back = lease(evo)
            self.assertEqual(back[0]["payload"], [1, 2])
            self.assertEqual(back[0]["attempt"], 1)
            batch = evo.post("/v1/queues/jobs/leases:ack",
                             json={"leaseIds": [back[0]["leaseId"], got[1]["leaseId"]]})
            self.assertEqual([x["acked"] for x in batch.json()["results"]], [True, True])
            self.assertEqual(queue_stats(evo)["depth"], 0)

    def test_ordering_keys_dedupe_delay_and_long_poll(self):
        with Evo(args=["--modules", "queue"]) as evo:
            declare(evo)
            for i in range(3):
                enqueue(evo, {"payload": i, "orderingKey": "customer-7"})
            ids = {enqueue(evo, {"payload": "once", "dedupeKey": "k1"}).json()["id"]
                   for _ in range(5)}
            self.assertEqual(len(ids), 1)
            enqueue(evo, {"payload": "later", "delaySeconds": 60})
            got = lease(evo, max=10)
            self.assertEqual(sorted(json.dumps(m["payload"]) for m in got), ['"once"', "0"])
            for expected in (1, 2):
                head = [m for m in got if m.get("orderingKey") == "customer-7"][0]
                evo.post("/v1/queues/jobs/leases/%s:ack" % head["leaseId"])
                got = lease(evo, max=10)
                self.assertEqual([m["payload"] for m in got], [expected])
            self.assertEqual(queue_stats(evo)["delayed"], 1)

            # A long poll answers as soon as a message arrives.
            result = {}

            def poll():
                start = time.time()
                result["leases"] = lease(evo, max=1, waitSeconds=10)
                result["seconds"] = time.time() - start

            t = threading.Thread(target=poll)
            t.start()
            time.sleep(0.5)
            enqueue(evo, {"payload": "wake up"})
            t.join(15)
            self.assertEqual([m["payload"] for m in result["leases"]], ["wake up"])
            self.assertLess(result["seconds"], 5)


    def test_lease_answer_stops_at_max_bytes_but_holds_one_message(self):
        """Review D17 / security D4: a lease answer had no byte cap (40 x 15 MiB leased at
        once took 3.2 GB). maxBytes (default 16 MiB) caps it; one message always comes."""
        with Evo(args=["--modules", "queue"]) as evo:
            declare(evo, maxPayloadBytes=1 << 20)
            big = "x" * 300_000
            r = enqueue(evo, {"messages": [{"payload": big + str(i)} for i in range(6)]})
            self.assertEqual(r.status_code, 201, r.text)
            got = lease(evo, max=10, maxBytes=700_000)
            self.assertEqual([m["payload"] for m in got], [big + "0", big + "1"])
            got = lease(evo, max=10, maxBytes=1)
            self.assertEqual([m["payload"] for m in got], [big + "2"])
            r = evo.post("/v1/queues/jobs/leases", json={"maxBytes": 0})
            self.assertEqual(r.status_code, 400, r.text)
            self.assertEqual(r.json()["errors"][0]["pointer"], "#/maxBytes", r.text)
            # The default (16 MiB) takes the three left.
            self.assertEqual(len(lease(evo, max=10)), 3)


class BadInput(unittest.TestCase):
    def test_nul_in_payloads_and_header_values_round_trips_byte_exact(self):
        # RFC 8259 allows \u0000; in a payload and a header value it is data (BAD_INPUTS.md).
        with Evo(args=["--modules", "queue"]) as evo:
            declare(evo, maxAttempts=1)
            payload = {"a": "x\u0000y", "k\u0000": "\u0000", "bin": "\u0000\u0001\u00ff"}
            r = enqueue(evo, {"payload": payload, "headers": {"h": "v\u0000w"}})
            self.assertEqual(r.status_code, 201, r.text)
            got = lease(evo, max=1)
            self.assertEqual(got[0]["payload"], payload)
            self.assertEqual(got[0]["headers"], {"h": "v\u0000w"})
            # Through a dead letter too: fail it (1 attempt) and read it back.
            r = evo.post("/v1/queues/jobs/leases/%s:nack" % got[0]["leaseId"],
                         json={"error": "bad\u0000byte"})
            self.assertIn(r.status_code, (200, 204), r.text)
            dead = evo.get("/v1/queues/jobs/dead-letters").json()["deadLetters"]
            self.assertEqual(dead[0]["payload"], payload)
            self.assertEqual(dead[0]["headers"], {"h": "v\u0000w"})
            # Keys and header names name things: a NUL there is a 400 naming the field.
            for body, pointer in [({"payload": 1, "orderingKey": "k\u0000"}, "#/orderingKey"),
                                  ({"payload": 1, "dedupeKey": "\u0000"}, "#/dedupeKey"),
                                  ({"payload": 1, "headers": {"a\u0000": "1"}}, "#/headers")]:
                r = enqueue(evo, body)
                self.assertEqual(r.status_code, 400, r.text)
                self.assertEqual(r.json().get("reason"), "INVALID_CHARACTER", r.text)
                self.assertEqual(r.json()["errors"][0]["pointer"], pointer, r.text)
            self.assertEqual(evo.session.put(evo.url("/v1/queues/a%00b"), json={}).status_code,
                             400)
            self.assertEqual(queue_stats(evo)["totals"]["enqueued"], 1)

    def test_bad_requests_get_clear_4xx_and_store_nothing(self):
        with Evo(args=["--modules", "queue"]) as evo:
            declare(evo, maxPayloadBytes=1000)
            cases = [
                ("POST", "/v1/queues/jobs/messages", {"payload": "x" * 2000}, 413),
                ("POST", "/v1/queues/nope/messages", {"payload": 1}, 404),
                ("POST", "/v1/queues/jobs/messages", {"payload": 1, "delaySeconds": -1}, 400),
                ("POST", "/v1/queues/jobs/messages", {"nopayload": 1}, 400),
                ("POST", "/v1/queues/jobs/messages", {"payload": 1, "priority": "urgent"}, 400),
                ("POST", "/v1/queues/jobs/messages", {"payload": 1, "headers": {"a": 1}}, 400),
                ("POST", "/v1/queues/jobs/messages",
                 {"messages": [{"payload": i} for i in range(1001)]}, 400),
                ("POST", "/v1/queues/jobs/messages", {"messages": []}, 400),
                ("POST", "/v1/queues/jobs/messages",
                 {"messages": [{"payload": 1}, {"payload": "x" * 2000}]}, 413),
                ("POST", "/v1/queues/jobs/leases", {"max": 0}, 400),
                ("POST", "/v1/queues/jobs/leases", {"max": 5000}, 400),
                ("POST", "/v1/queues/jobs/leases", {"visibilitySeconds": -3}, 400),
                ("POST", "/v1/queues/jobs/leases", {"waitSeconds": 999}, 400),
                ("POST", "/v1/queues/jobs/leases/not-a-lease:ack", None, 400),
                ("POST", "/v1/queues/jobs/leases/00000000000000ff-1:ack", None, 404),
                ("POST", "/v1/queues/jobs/leases/00000000000000ff-1:nack",
                 {"delaySeconds": -1}, 400),
                ("POST", "/v1/queues/jobs/leases:ack", {"leaseIds": []}, 400),
                ("PUT", "/v1/queues/bad%20name", {}, 400),
                ("PUT", "/v1/queues/jobs", {"maxAttempts": 0}, 400),
                ("GET", "/v1/queues/jobs/dead-letters?pageSize=0", None, 400),
                ("GET", "/v1/queues/jobs/dead-letters?pageToken=zzz", None, 400),
                ("GET", "/v1/queues/jobs/dead-letters/123", None, 404),
                ("POST", "/v1/queues/jobs/dead-letters:redrive", {"ids": ["x"]}, 400),
            ]
            for method, path, body, want in cases:
                r = evo.session.request(method, evo.url(path), json=body, timeout=10)
                self.assertEqual(r.status_code, want, "%s %s -> %s" % (method, path, r.text))
                self.assertTrue(is_problem(r), r.text)
            # Not JSON, wrong content type.
            r = evo.post("/v1/queues/jobs/messages", data="{", headers={
                "Content-Type": "application/json"})
            self.assertEqual(r.status_code, 400)
            r = evo.post("/v1/queues/jobs/messages", data="payload=1", headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(r.status_code, 415)
            s = queue_stats(evo)
            self.assertEqual((s["depth"], s["totals"]["enqueued"]), (0, 0))
            self.assertEqual(evo.get("/livez").status_code, 200)


class CrashSafety(unittest.TestCase):
    """1,000,000 messages through producers and consumers over HTTP while the server is
    killed with SIGKILL three times; every acknowledged enqueue is delivered, no acknowledged
    ack is delivered again, dead letters survive."""

    TOTAL = 1_000_000
    BATCH = 1000

    def setUp(self):
        self._dir = tempfile.TemporaryDirectory(prefix="evo-e2e-queue-")
        self.addCleanup(self._dir.cleanup)

    def test_kill_9_three_times_loses_nothing_acknowledged(self):
        data_dir = self._dir.name
        args = ["--modules", "queue"]
        evo = Evo(data_dir=data_dir, args=args)
        declare(evo, maxAttempts=100, visibilitySeconds=5)
        declare(evo, "poison", maxAttempts=1)
        # Dead letters to find intact after every crash.
        enqueue(evo, {"messages": [{"payload": {"poison": i}} for i in range(20)]}, "poison")
        for m in lease(evo, "poison", max=20):
            evo.post("/v1/queues/poison/leases/%s:nack" % m["leaseId"],
                     json={"error": "bad %d" % m["payload"]["poison"], "permanent": True})
        dead_before = evo.get("/v1/queues/poison/dead-letters").json()["deadLetters"]
        self.assertEqual(len(dead_before), 20)

        state = {"base": evo.base}
        lock = threading.Lock()
        enqueued = set()        # batches whose enqueue was acknowledged
        delivered = {}          # n -> deliveries
        acked = set()           # n whose ack was acknowledged
        redelivered_after_ack = []
        producing = threading.Event()
        producing.set()
        done = threading.Event()
        batches = list(range(self.TOTAL // self.BATCH))
        next_batch = {"i": 0}

        def post(session, path, body, timeout=30):
            return session.post(state["base"] + path, json=body, timeout=timeout)

        def producer():
            s = requests.Session()
            while True:
                with lock:
                    if next_batch["i"] >= len(batches):
                        return
                    b = batches[next_batch["i"]]
                    next_batch["i"] += 1
                body = {"messages": [{"payload": {"n": b * self.BATCH + i, "pad": "x" * 40},
                                      "dedupeKey": "n%d" % (b * self.BATCH + i)}
                                     for i in range(self.BATCH)]}
                while True:  # retried until acknowledged: the dedupe key makes it idempotent
                    try:
                        r = post(s, "/v1/queues/jobs/messages", body)
                        if r.status_code == 201:
                            with lock:
                                enqueued.add(b)
                            break
                    except requests.RequestException:
                        pass
                    time.sleep(0.05)

        def consumer():
            s = requests.Session()
            while not done.is_set():
                try:
                    r = post(s, "/v1/queues/jobs/leases",
                             {"max": 1000, "visibilitySeconds": 5, "waitSeconds": 1})
                    if r.status_code != 200:
                        time.sleep(0.05)
                        continue
                    leases = r.json()["leases"]
                    with lock:
                        for m in leases:
                            n = m["payload"]["n"]
                            delivered[n] = delivered.get(n, 0) + 1
                            if n in acked:
                                redelivered_after_ack.append(n)
                    if not leases:
                        continue
                    r = post(s, "/v1/queues/jobs/leases:ack",
                             {"leaseIds": [m["leaseId"] for m in leases]})
                    if r.status_code == 200:
                        results = r.json()["results"]
                        with lock:
                            for m, res in zip(leases, results):
                                if res["acked"]:
                                    acked.add(m["payload"]["n"])
                except (requests.RequestException, ValueError, KeyError):
                    time.sleep(0.05)

        threads = [threading.Thread(target=producer) for _ in range(2)]
        threads += [threading.Thread(target=consumer) for _ in range(2)]
        for t in threads:
            t.start()
        rng = random.Random(7)
        try:
            for _ in range(3):
                time.sleep(rng.uniform(2.0, 6.0))
                evo.kill()
                evo = Evo(data_dir=data_dir, args=args)
                with lock:
                    state["base"] = evo.base
                dead_now = evo.get("/v1/queues/poison/dead-letters").json()["deadLetters"]
                self.assertEqual(dead_now, dead_before)
            for t in threads[:2]:
                t.join(600)
            # Drain: wait until every acknowledged message was acked by a consumer.
            deadline = time.time() + 300
            while time.time() < deadline:
                if queue_stats(evo)["depth"] == 0:
                    break
                time.sleep(0.5)
            done.set()
            for t in threads[2:]:
                t.join(60)
            self.assertEqual(len(enqueued), len(batches))
            missing = [n for n in range(self.TOTAL) if n not in delivered]
            self.assertEqual(missing[:10], [], "%d acknowledged messages never delivered"
                             % len(missing))
            self.assertEqual(redelivered_after_ack[:10], [],
                             "messages delivered again after their ack was acknowledged")
            s = queue_stats(evo)
            self.assertEqual(s["depth"], 0)
            # Duplicates only from leases in flight at a kill (or whose ack answer was lost).
            duplicates = sum(c - 1 for c in delivered.values())
            print("\n%d messages, 3 kills: %d duplicate deliveries (in flight at a kill)"
                  % (self.TOTAL, duplicates), file=sys.stderr)
            self.assertLess(duplicates, 3 * 2 * 1000 * 3 + 1)
            dead_after = evo.get("/v1/queues/poison/dead-letters").json()["deadLetters"]
            self.assertEqual(dead_after, dead_before)
        finally:
            done.set()
            evo.kill()


class Shutdown(unittest.TestCase):
    def test_sigterm_answers_an_idle_long_poll_and_exits_before_the_shutdown_timeout(self):
        """Review D6: the drain waited the whole --shutdown-timeout for an idle long poll,
        which then got no HTTP answer at all (curl: empty reply)."""
        evo = Evo(args=["--modules", "queue", "--shutdown-timeout", "30s"])
        try:
            declare(evo)
            result = {}

            def poll():
                try:
                    r = requests.post(evo.url("/v1/queues/jobs/leases"),
                                      json={"waitSeconds": 20}, timeout=60)
                    result["status"], result["body"] = r.status_code, r.json()
                except requests.RequestException as e:
                    result["error"] = repr(e)

            t = threading.Thread(target=poll)
            t.start()
            time.sleep(1)  # the poll is waiting in the broker
            start = time.time()
            rc = evo.terminate(timeout=60)
            stopped_after = time.time() - start
            t.join(60)
            self.assertEqual(rc, 0, evo.log())
            self.assertNotIn("error", result, evo.log())
            self.assertEqual(result["status"], 200)
            self.assertEqual(result["body"], {"leases": []})
            # Far below the 30 s timeout (and the poll's own 20 s): nothing waited them out.
            self.assertLess(stopped_after, 10, evo.log())
        finally:
            evo.cleanup()


class Cli(unittest.TestCase):
    def test_ls_stats_and_dlq_beside_a_running_server(self):
        with Evo(args=["--modules", "queue"]) as evo:
            declare(evo, maxAttempts=1)
            enqueue(evo, {"messages": [{"payload": i} for i in range(3)]})
            for m in lease(evo, max=2):
                evo.post("/v1/queues/jobs/leases/%s:nack" % m["leaseId"],
                         json={"error": "boom %s" % m["payload"]})

            def run(*args):
                return subprocess.run([EVO, "queue"] + list(args) + ["--data-dir", evo.data_dir],
                                      capture_output=True, text=True, timeout=30)

            out = run("ls")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertRegex(out.stdout, r"jobs\s+1\s+1\s+0\s+0\s+2")
            out = run("stats", "jobs", "--format", "json")
            self.assertEqual(json.loads(out.stdout)["deadLetters"], 2)
            out = run("dlq", "jobs")
            self.assertIn("boom 0", out.stdout)
            # Changing the queues beside the server is refused (the server owns the data dir);
            # its API does it.
            for change in ("--redrive", "--purge"):
                out = run("dlq", "jobs", change, "--error-contains", "boom 1")
                self.assertEqual(out.returncode, 1, out.stderr)
                self.assertIn("data dir %s is in use by pid %d" % (evo.data_dir, evo.proc.pid),
                              out.stderr)
            s = queue_stats(evo)
            self.assertEqual((s["depth"], s["deadLetters"]), (1, 2))
            out = run("stats", "nope")
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("nope", out.stderr)
            out = run("dlq", "jobs", "--redrive", "--purge")
            self.assertEqual(out.returncode, 2)


if __name__ == "__main__":
    unittest.main()
