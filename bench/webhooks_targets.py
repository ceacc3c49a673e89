"""bench/webhooks_targets.py — the loaders of bench/webhooks.sh's issue-target parts (Debian's
/usr/bin/python3, standard library only). Each prints one JSON record that
bench/webhooks_report.py's report reads back.

  webhooks_targets.py latency BASE RECEIVER --endpoints K --rate R [--seconds S] [--bytes B]
                      [--threads T] [--timeout X] [--tag TAG]
        open loop: publish events at a fixed R/K events/s (R deliveries/s over K endpoints)
        for S s from T threads with their own keep-alive connections; event i is due at
        start + i/(R/K) whatever happened to the earlier ones, and its payload carries its
        number and "sentMs" (wall-clock ms, stamped just before its POST /v1/messages goes
        out), padded so that evo's delivery body is B bytes. Then wait (up to X s) until
        RECEIVER (`evo webhooks listen`) has every delivery and read its GET /latency: each
        first arrival behind the body's "timestamp" (when evo accepted the event), per
        delivery and per message.
  webhooks_targets.py fill BASE N [--endpoints K] [--bytes B] [--conns C] [--timeout X]
                      [--tag TAG]
        publish N events (asyncio, C keep-alive connections) whose deliveries cannot complete
        (the endpoints answer 503 + a long Retry-After), then poll evo's GET /metrics until
        the fan-out queue is empty and the endpoint queues hold N*K deliveries (or X s pass)
"""
import asyncio
import http.client
import json
import math
import re
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no bench/__pycache__ from the import below
from webhooks_report import (EVENT_TYPE, call, emit, opts_from, padded_payload,
                             publish_many)


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def summary(values):
    if not values:
        return {"n": 0}
    r = lambda x: round(x, 3)  # noqa: E731
    return {"n": len(values), "mean": r(sum(values) / len(values)), "p50": r(pct(values, 0.5)),
            "p90": r(pct(values, 0.9)), "p99": r(pct(values, 0.99)), "max": r(max(values))}


def get_json(base, path):
    st, body = call(base, "GET", path)
    if st != 200:
        raise OSError(f"GET {path} answered {st}")
    return json.loads(body)


# --- latency: open-loop publishing at a fixed rate --------------------------------------------
def cmd_latency(args):
    opts, rest = opts_from(args, {"--endpoints": "1", "--rate": "1000", "--seconds": "20",
                                  "--bytes": "1024", "--threads": "32", "--timeout": "60",
                                  "--tag": "latency"})
    base, receiver = rest[0].rstrip("/"), rest[1].rstrip("/")
    k = int(opts["--endpoints"])
    rate = float(opts["--rate"])          # deliveries/s
    seconds = float(opts["--seconds"])
    nbytes = int(opts["--bytes"])
    ev_rate = rate / k                    # events/s
    n = max(1, round(ev_rate * seconds))
    u = urllib.parse.urlsplit(base)
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "errors": 0, "first_error": ""}
    late_ms, publish_ms = [], []
    start = time.monotonic() + 0.5

    def worker():
        conn = None
        while True:
            with lock:
                i = state["next"]
                if i >= n or state["errors"] > 50:
                    break
                state["next"] += 1
            due = start + i / ev_rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t_send = time.monotonic()
            sent_ms = time.time() * 1000
            payload = padded_payload(nbytes, id=f"{i:09d}", sentMs=f"{sent_ms:.3f}")
            body = ('{"eventType":"%s","payload":%s}' % (EVENT_TYPE, payload)).encode()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                conn.request("POST", "/v1/messages", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                t_done = time.monotonic()
                with lock:
                    late_ms.append((t_send - due) * 1000)
                    if r.status == 202:
                        state["ok"] += 1
                        publish_ms.append((t_done - t_send) * 1000)
                    else:
                        state["errors"] += 1
                        state["first_error"] = state["first_error"] or f"{r.status} {data[:160]!r}"
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    state["errors"] += 1
                    state["first_error"] = state["first_error"] or f"{type(e).__name__}: {e}"
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(max(1, int(opts["--threads"])))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    publish_s = time.monotonic() - start
    want = state["ok"] * k
    deadline = time.monotonic() + float(opts["--timeout"])
    stats, watch_error, wait_s = {}, "", None
    t_wait = time.monotonic()
    while True:
        try:
            stats = get_json(receiver, "/stats")
            watch_error = ""
            if stats.get("distinct", 0) >= want:
                wait_s = time.monotonic() - t_wait
                break
        except (OSError, ValueError) as e:
            watch_error = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    try:
        lat = get_json(receiver, "/latency")
    except (OSError, ValueError) as e:
        lat = {}
        watch_error = watch_error or f"GET /latency: {type(e).__name__}: {e}"
    emit({"kind": "latency", "tag": opts["--tag"], "endpoints": k, "rate": rate,
          "events_per_s": ev_rate, "seconds": seconds, "events": n, "accepted": state["ok"],
          "publish_errors": state["errors"], "first_error": state["first_error"],
          "publish_s": publish_s, "late_ms": summary(late_ms), "publish_ms": summary(publish_ms),
          "want": want, "complete_after_s": wait_s, "final": stats, "latency": lat,
          "watch_error": watch_error, "body_bytes": nbytes})


# --- fill: a million deliveries that cannot complete ------------------------------------------
DEPTH_RE = re.compile(r'^(evo_queue_(?:depth|ready|delayed|in_flight))\{[^}]*queue="([^"]+)"[^}]*\}'
                      r"\s+(\S+)", re.M)


def queue_gauges(base):
    st, text = call(base, "GET", "/metrics")
    if st != 200:
        raise OSError(f"GET /metrics answered {st}")
    out = {"fanout": 0, "depth": 0, "ready": 0, "delayed": 0, "in_flight": 0, "queues": 0}
    for name, queue, value in DEPTH_RE.findall(text):
        v = int(float(value))
        kind = name.removeprefix("evo_queue_")
        if queue == "webhooks.fanout":
            if kind == "depth":
                out["fanout"] = v
        elif queue.startswith("webhooks.ep."):
            out[kind] += v
            out["queues"] += kind == "depth"
    return out


def cmd_fill(args):
    opts, rest = opts_from(args, {"--endpoints": "10", "--bytes": "1024", "--conns": "64",
                                  "--timeout": "300", "--tag": "fill"})
    base, n = rest[0].rstrip("/"), int(rest[1])
    k = int(opts["--endpoints"])
    body = ('{"eventType":"%s","payload":%s}'
            % (EVENT_TYPE, padded_payload(int(opts["--bytes"])))).encode()
    pub = {"next": 0, "ok": 0, "errors": 0, "first_error": ""}
    t0 = time.monotonic()
    asyncio.run(publish_many(base, n, int(opts["--conns"]), body, pub))
    publish_s = time.monotonic() - t0
    want = pub["ok"] * k
    samples, g, err, queued_s = [], {}, "", None
    deadline = t0 + float(opts["--timeout"])
    while True:
        try:
            g = queue_gauges(base)
            err = ""
            samples.append([round(time.monotonic() - t0, 2), g["fanout"], g["depth"]])
            if g["fanout"] == 0 and g["depth"] >= want:
                queued_s = time.monotonic() - t0
                break
        except (OSError, ValueError) as e:
            err = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
    emit({"kind": "fill", "tag": opts["--tag"], "events": n, "endpoints": k,
          "accepted": pub["ok"], "publish_errors": pub["errors"],
          "first_error": pub["first_error"], "publish_s": publish_s, "want": want,
          "queued_s": queued_s, "gauges": g, "samples": samples[-20:], "watch_error": err,
          "body_bytes": int(opts["--bytes"])})


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "latency":
        cmd_latency(args)
    elif cmd == "fill":
        cmd_fill(args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
