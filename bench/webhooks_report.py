"""bench/webhooks_report.py — helpers and the report for bench/webhooks.sh (Debian's
/usr/bin/python3, standard library only). Every measurement is one JSON line; the report reads
them back.

  webhooks_report.py secret                  a new whsec_ secret (32 random bytes)
  webhooks_report.py setup BASE TYPE SECRET URL[@RATE]...
                                             create the event type and one endpoint per URL
                                             ("verify": false, the given secret, RATE =
                                             rateLimitPerSecond; 16 at a time); prints the
                                             endpoint ids (one line, or "N endpoints
                                             ep_first..ep_last" for more than 20)
  webhooks_report.py deliver BASE LISTENER N --paths P,P.. [--tag T] [--conns C]
                     [--timeout S] [--interval I] [--bytes B]
                                             publish N events to evo (asyncio, C keep-alive
                                             connections) while polling the listener's
                                             GET /stats every I s until every path has a
                                             distinct delivery of every accepted event (or S s
                                             pass) -> a record with the samples; --bytes B
                                             pads the payload so that the body evo delivers is
                                             B bytes (default: the 203-byte PAYLOAD)
  webhooks_report.py presign SECRET OUT N PATH [--bytes B]
                                             N deliveries signed like evo signs them (distinct
                                             webhook-ids, now as the timestamp), one per line,
                                             for bench/webhooks.lua's listener mode; --bytes B
                                             as for deliver
  webhooks_report.py steady DELIVER_RECORD.json
                                             print the record's deliveries/s between 10 % and
                                             90 % delivered (nothing when it has none)
  webhooks_report.py wrk --tag T WRK_OUT     one wrk run with bench/webhooks.lua -> a record
  webhooks_report.py pgbench --tag T PGBENCH_OUT
                                             one pgbench run -> a record
  webhooks_report.py get URL                 GET URL, print the body (exit 1 unless 200)
  webhooks_report.py emit KIND KEY=VALUE...  one record (numbers stay numbers)
  webhooks_report.py report RESULTS.jsonl    the tables
"""
import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import re
import sys
import time
import urllib.parse
from benchlib import cmd_emit, emit, opts_from, parse_wrk

EVENT_TYPE = "bench.event"
# The same 203 bytes bench/webhooks.lua publishes and bench/webhooks_pgbench.sql inserts.
PAYLOAD = ('{"orderId":"ord_2xK9fQ7mLp","customer":{"id":"cus_8HdT3vNq","email":'
           '"jane.doe@example.com"},"amount":4999,"currency":"EUR","items":[{"sku":'
           '"SKU-1001","qty":2},{"sku":"SKU-2002","qty":1}],"status":"paid"}')

# What evo wraps a payload in: {"type":...,"timestamp":"<RFC 3339, ms>","data":PAYLOAD}
ENVELOPE_BYTES = len('{"type":"%s","timestamp":"2025-01-01T00:00:00.000Z","data":}' % EVENT_TYPE)

ISOLATION_TARGET = 0.20  # healthy endpoints at most 20 % slower beside a slow and a failing one
RATE_TOLERANCE = 0.05    # the achieved rate within ±5 % of rateLimitPerSecond
# The targets
D_TARGET = 0.35          # D >= 0.35 x R_raw
LATENCY_TARGET_MS = 20   # publish -> first attempt p99 at D/2
ISO30_TARGET = 0.05      # a 30 s endpoint and a 500 endpoint cost the healthy ones <= 5 %
RSS_TARGET_MIB = 256     # with 1,000,000 undelivered messages queued


def padded_payload(body_bytes, **fields):
    """Compact JSON text of `fields` plus a "pad" string, sized so that evo's delivery body
    around it is `body_bytes` long. Keys sorted, as evo stores and re-serializes payloads."""
    obj = dict(fields, pad="")
    base = len(json.dumps(obj, separators=(",", ":"), sort_keys=True))
    obj["pad"] = "x" * max(0, body_bytes - ENVELOPE_BYTES - base)
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def conn_for(base, timeout=30):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def call(base, method, path, body=None):
    c = conn_for(base)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


# --- setup -----------------------------------------------------------------------------------
def cmd_secret():
    print("whsec_" + base64.b64encode(os.urandom(32)).decode())


def cmd_setup(args):
    base, etype, secret, urls = args[0].rstrip("/"), args[1], args[2], args[3:]
    st, body = call(base, "POST", "/v1/event-types",
                    {"name": etype, "description": "bench/webhooks.sh"})
    if st not in (201, 409):
        sys.exit(f"POST /v1/event-types answered {st}: {body[:200]}")
    def create(spec):
        url, _, rate = spec.partition("@")
        ep = {"url": url, "eventTypes": [etype], "secret": secret, "verify": False,
              "description": "bench"}
        if rate:
            ep["rateLimitPerSecond"] = float(rate)
        try:
            st, body = call(base, "POST", "/v1/endpoints", ep)
        except OSError as e:
            return None, f"POST /v1/endpoints {url}: {e}"
        try:
            d = json.loads(body)
        except ValueError:
            d = {}
        if st != 201 or d.get("state") != "active":
            return None, f"POST /v1/endpoints {url} answered {st}: {body[:200]}"
        return d.get("id", "?"), None

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        done = list(pool.map(create, urls))
    errors = [e for _, e in done if e]
    if errors:
        sys.exit(f"{len(errors)} of {len(urls)} endpoints failed; {errors[0]}")
    ids = [i for i, _ in done]
    print(" ".join(ids) if len(ids) <= 20 else f"{len(ids)} endpoints {ids[0]}..{ids[-1]}")


# --- deliver: publish N events while watching the listener ------------------------------------
async def read_response(reader):
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    status = int(line.split()[1])
    length = 0
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def publish_many(base, n, conns, body, pub, max_errors=50):
    """POSTs `body` to /v1/messages n times over `conns` keep-alive connections; counts into
    pub ("next", "ok" = answered 202, "errors", "first_error"); stops after max_errors."""
    u = urllib.parse.urlsplit(base)
    req = (b"POST /v1/messages HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % (u.netloc.encode(), len(body))) + body

    async def publisher():
        reader = writer = None
        while pub["next"] < n and pub["errors"] <= max_errors:
            pub["next"] += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(u.hostname, u.port)
                writer.write(req)
                status, data = await read_response(reader)
                if status == 202:
                    pub["ok"] += 1
                else:
                    pub["errors"] += 1
                    pub["first_error"] = pub["first_error"] or f"{status} {data[:160]!r}"
            except (OSError, ConnectionError, ValueError, IndexError,
                    asyncio.IncompleteReadError) as e:
                pub["errors"] += 1
                pub["first_error"] = pub["first_error"] or f"{type(e).__name__}: {e}"
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(publisher() for _ in range(conns)))


async def deliver(base, listener, n, paths, conns, timeout, interval, body_bytes=0):
    lu = urllib.parse.urlsplit(listener)
    payload = padded_payload(body_bytes) if body_bytes else PAYLOAD
    body = ('{"eventType":"%s","payload":%s}' % (EVENT_TYPE, payload)).encode()
    pub = {"next": 0, "ok": 0, "errors": 0, "first_error": "", "done_s": None}
    t0 = time.monotonic()

    async def publish_all():
        await publish_many(base, n, conns, body, pub, max_errors=20)
        pub["done_s"] = time.monotonic() - t0

    samples = []   # [t, sum over paths of distinct, received]
    done_s = {}    # path -> first time it had every accepted event
    first_s = None
    final = {}
    last_error = ""
    pub_task = asyncio.ensure_future(publish_all())
    reader = writer = None
    get = (b"GET /stats HTTP/1.1\r\nHost: %s\r\n\r\n" % lu.netloc.encode())
    while True:
        ts = time.monotonic()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(lu.hostname, lu.port)
            writer.write(get)
            status, data = await asyncio.wait_for(read_response(reader), 10)
            te = time.monotonic()
            if status == 200:
                final = json.loads(data)
                t = (ts + te) / 2 - t0
                by = final.get("byPath", {})
                total = sum(by.get(p, {}).get("distinct", 0) for p in paths)
                samples.append([round(t, 4), total, final.get("received", 0)])
                if first_s is None and total > 0:
                    first_s = t
                if pub["done_s"] is not None:
                    for p in paths:
                        if p not in done_s and by.get(p, {}).get("distinct", 0) >= pub["ok"]:
                            done_s[p] = t
            else:
                last_error = f"GET /stats answered {status}"
        except (OSError, ConnectionError, ValueError, IndexError, asyncio.TimeoutError,
                asyncio.IncompleteReadError) as e:
            last_error = f"GET /stats: {type(e).__name__}: {e}"
            if writer is not None:
                writer.close()
            reader = writer = None
        if pub["done_s"] is not None and len(done_s) == len(paths):
            break
        if time.monotonic() - t0 > timeout:
            break
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - ts)))
    if not pub_task.done():
        pub_task.cancel()
    if writer is not None:
        writer.close()
    all_done = max(done_s.values()) if len(done_s) == len(paths) else None
    return {"events": n, "accepted": pub["ok"], "publish_errors": pub["errors"],
            "first_error": pub["first_error"], "publish_s": pub["done_s"],
            "paths": paths, "want_per_path": pub["ok"], "done_s": done_s,
            "all_done_s": all_done, "first_delivery_s": first_s, "samples": samples,
            "final": final, "watch_error": last_error, "timeout_s": timeout,
            "body_bytes": body_bytes or ENVELOPE_BYTES + len(PAYLOAD)}


def cmd_deliver(args):
    opts, rest = opts_from(args, {"--paths": "/", "--tag": "deliver", "--conns": "32",
                                  "--timeout": "120", "--interval": "0.2", "--bytes": "0"})
    base, listener, n = rest[0].rstrip("/"), rest[1].rstrip("/"), int(rest[2])
    paths = opts["--paths"].split(",")
    rec = asyncio.run(deliver(base, listener, n, paths, int(opts["--conns"]),
                              float(opts["--timeout"]), float(opts["--interval"]),
                              int(opts["--bytes"])))
    rec = {"kind": "deliver", "tag": opts["--tag"], **rec}
    emit(rec)


# --- presign: deliveries for the listener's raw capacity --------------------------------------
def cmd_presign(args):
    opts, args = opts_from(args, {"--bytes": "0"})
    secret, out, n, path = args[0], args[1], int(args[2]), args[3]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    ts = str(int(time.time()))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    nbytes = int(opts["--bytes"])
    payload = padded_payload(nbytes) if nbytes else PAYLOAD
    body = '{"type":"%s","timestamp":"%s","data":%s}' % (EVENT_TYPE, stamp, payload)
    nonce = int(time.time() * 1000) % 10**9
    with open(out, "w") as f:
        for i in range(n):
            mid = f"msg_{nonce}{i:07d}"
            mac = hmac.new(key, f"{mid}.{ts}.{body}".encode(), hashlib.sha256).digest()
            sig = "v1," + base64.b64encode(mac).decode()
            f.write(f"{path}\t{mid}\t{ts}\t{sig}\t{body}\n")


# --- parsers ---------------------------------------------------------------------------------
def cmd_wrk(args):
    opts, files = opts_from(args, {"--tag": "wrk"})
    out = {"kind": "wrk", "tag": opts["--tag"]}
    out.update(parse_wrk(open(files[0]).read(), "webhooks.lua"))
    lua = out["lua"] or {}
    secs = lua.get("duration_us", 0) / 1e6
    out["seconds"] = secs
    out["ok_per_s"] = lua.get("ok", 0) / secs if secs else 0.0
    emit(out)


def cmd_pgbench(args):
    opts, files = opts_from(args, {"--tag": "pg"})
    text = open(files[0]).read()
    out = {"kind": "pg", "tag": opts["--tag"]}
    m = re.search(r"number of transactions actually processed:\s+(\d+)", text)
    out["tx"] = int(m.group(1)) if m else 0
    m = re.search(r"number of failed transactions:\s+(\d+)", text)
    out["failed"] = int(m.group(1)) if m else 0
    m = re.search(r"^tps = ([\d.]+)", text, re.M)
    out["tps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"latency average = ([\d.]+) ms", text)
    out["latency_avg_ms"] = float(m.group(1)) if m else None
    out["aborted"] = len(re.findall(r"client \d+ aborted", text))
    emit(out)


def cmd_get(url):
    u = urllib.parse.urlsplit(url)
    try:
        st, body = call(f"{u.scheme}://{u.netloc}", "GET", u.path + (f"?{u.query}" if u.query else ""))
    except OSError as e:
        sys.exit(f"GET {url}: {e}")
    print(body)
    sys.exit(0 if st == 200 else 1)


# --- analysis --------------------------------------------------------------------------------
def steady_rate(samples, want, lo=0.1, hi=0.9):
    """Rate between the first sample at >= lo*want and the last at <= hi*want."""
    a = next((s for s in samples if s[1] >= lo * want), None)
    b = next((s for s in reversed(samples) if s[1] <= hi * want), None)
    if a is None or b is None or b[0] - a[0] <= 0.5:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


def max_window_rate(samples, window=1.0, lo=None, hi=None):
    """The highest count/s over any span of >= `window` s between samples."""
    best = None
    pts = [s for s in samples if (lo is None or s[1] >= lo) and (hi is None or s[1] <= hi)]
    j = 0
    for i in range(len(pts)):
        while j < len(pts) and pts[j][0] - pts[i][0] < window:
            j += 1
        if j < len(pts):
            r = (pts[j][1] - pts[i][1]) / (pts[j][0] - pts[i][0])
            best = r if best is None or r > best else best
    return best


def fmt_rate(x, unit=""):
    return f"{x:,.0f}{unit}" if isinstance(x, (int, float)) else "-"


def fmt_s(x):
    return f"{x:.2f} s" if isinstance(x, (int, float)) else "-"


def cmd_report(path):
    recs = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    by_tag = {}
    kinds = {}
    for r in recs:
        kinds.setdefault(r["kind"], []).append(r)
        if "tag" in r:
            by_tag[(r["kind"], r["tag"])] = r
    rss = {r["phase"]: r for r in kinds.get("rss", [])}
    info = {r["name"]: r for r in kinds.get("info", [])}
    skipped = kinds.get("skipped", [])

    rows = []

    def row(metric, e, p, target, verdict):
        rows.append((metric, e, p, target, verdict))

    def ok(flag):
        return "-" if flag is None else ("ok" if flag else "MISSED")

    # 0. the targets: the headline rows
    details = []
    target_rows = 0
    raw = by_tag.get(("wrk", "raw"))
    rawv = raw["ok_per_s"] if raw else None
    raw_info = info.get("raw") or {}
    dd = by_tag.get(("deliver", "d"))
    if raw:
        row(f"R_raw: listener's capacity, wrk -c{raw_info.get('conns', '?')},"
            f" {raw_info.get('bytes', '?')} B signed bodies", fmt_rate(rawv), "-",
            "(the peer of D)", "-")
        lua = raw.get("lua") or {}
        details.append(
            f"   R_raw: {rawv:,.0f} deliveries/s answered 2xx, p50 {raw['p50_ms']} ms, p99"
            f" {raw['p99_ms']} ms; non-2xx {lua.get('non2xx', '-')} ({lua.get('statuses', '-')}),"
            f" socket errors {raw['socket_errors']}")
    if dd:
        total = dd["want_per_path"] * len(dd["paths"])
        dv = steady_rate(dd["samples"], total)
        ratio = dv / rawv if dv and rawv else None
        row(f"D: deliveries/s, {len(dd['paths']):,} ep x {dd['want_per_path']:,} ev,"
            f" {dd.get('body_bytes', '?')} B, durable (10-90 %)", fmt_rate(dv), fmt_rate(rawv),
            f"{ratio:.2f}x R_raw (>= {D_TARGET:.2f}x)" if ratio else f">= {D_TARGET:.2f}x R_raw",
            ok(ratio >= D_TARGET) if ratio else ("MISSED" if dd.get("all_done_s") is None
                                                 else "-"))
        t = dd.get("all_done_s")
        f = dd.get("final") or {}
        details.append(
            f"   D: published {dd['accepted']:,} of {dd['events']:,} in {fmt_s(dd['publish_s'])}"
            f" ({dd['publish_errors']} errors{': ' + dd['first_error'] if dd['first_error'] else ''});"
            f" first delivery after {fmt_s(dd['first_delivery_s'])}; all {total:,} after"
            f" {fmt_s(t)}{' = %s/s publish -> last' % fmt_rate(total / t) if t else ''};"
            f" duplicates {f.get('duplicates')}, bad signatures {f.get('badSignatures')}"
            + (f"; evo RSS after: {rss['d']['kib'] / 1024:.1f} MiB (VmHWM"
               f" {rss['d'].get('hwm_kib', 0) / 1024:.1f} MiB)" if "d" in rss else ""))
    lats = sorted(kinds.get("latency", []), key=lambda r: -r["endpoints"])
    for lr in lats:
        lat = lr.get("latency") or {}
        f = lr.get("final") or {}
        complete = f.get("distinct", 0) >= lr["want"] and lr["accepted"] > 0
        for key, label in (("deliveries", "per delivery"), ("messages", "per message")):
            x = lat.get(key) or {}
            p99 = x.get("p99")
            name = (f"publish->first attempt p99, {lr['endpoints']:,} ep at"
                    f" {lr['rate']:,.0f} deliv/s, {label}" if key == "deliveries" else
                    "   ... per message (its first endpoint's arrival)")
            row(name, f"{p99:.1f} ms" if isinstance(p99, (int, float)) else "-",
                f"p50 {x['p50']:.1f} ms" if isinstance(x.get("p50"), (int, float)) else "-",
                f"<= {LATENCY_TARGET_MS:g} ms" + ("" if complete else " (incomplete run)"),
                ok(p99 <= LATENCY_TARGET_MS and complete) if isinstance(p99, (int, float))
                else "-")
        late, pub, dl = lr["late_ms"], lr["publish_ms"], lat.get("deliveries") or {}
        details.append(
            f"   latency, {lr['endpoints']:,} endpoint(s): {lr['accepted']:,}/{lr['events']:,}"
            f" events at {lr['events_per_s']:.1f}/s (= {lr['rate']:,.0f} deliveries/s) for"
            f" {lr['seconds']:g} s, {lr['publish_errors']} errors; the publisher sent late by p99"
            f" {late.get('p99')} ms (max {late.get('max')}); POST /v1/messages p50"
            f" {pub.get('p50')} ms, p99 {pub.get('p99')} ms; delivered {f.get('distinct', 0):,} of"
            f" {lr['want']:,}, duplicates {f.get('duplicates')}, bad signatures"
            f" {f.get('badSignatures')}; per delivery p90 {dl.get('p90')} ms, max {dl.get('max')} ms"
            + (f" (each message fans out to {lr['endpoints']:,} deliveries at once: the per-delivery"
               f" figures include draining that burst)" if lr["endpoints"] > 1 else ""))
    iso_info = info.get("iso30") or {}
    rounds = int(iso_info.get("rounds", 0) or 0)
    base_rates, bad_rates = [], []
    for rnd in range(1, rounds + 1):
        for tag, acc in ((f"iso30_base{rnd}", base_rates), (f"iso30_bad{rnd}", bad_rates)):
            r = by_tag.get(("deliver", tag))
            if r:
                v = steady_rate(r["samples"], r["want_per_path"] * len(r["paths"]))
                if v:
                    acc.append(v)
                f = r.get("final") or {}
                details.append(
                    f"   isolation round {rnd}, {'alone' if 'base' in tag else 'beside slow + 500'}:"
                    f" {fmt_rate(v)} healthy deliveries/s (10-90 %); all after"
                    f" {fmt_s(r.get('all_done_s'))}; duplicates {f.get('duplicates')}, bad"
                    f" signatures {f.get('badSignatures')}")
        a = info.get(f"iso30_attempts{rnd}")
        if a:
            details.append(f"   isolation round {rnd}, evo attempts: {a.get('attempts')}")
    if rounds and any(("deliver", f"iso30_{w}{r}") in by_tag
                      for w in ("base", "bad") for r in range(1, rounds + 1)):
        mb = sum(base_rates) / len(base_rates) if base_rates else None
        mx = sum(bad_rates) / len(bad_rates) if bad_rates else None
        cost = 1 - mx / mb if mb and mx else None
        r0 = by_tag.get(("deliver", "iso30_base1")) or {}
        row(f"isolation: {len(r0.get('paths', [])):,} healthy ep beside a"
            f" {iso_info.get('slow_ms', 30000) / 1000:g} s + a 500 ep, deliveries/s",
            fmt_rate(mx), f"{fmt_rate(mb)} alone",
            f"{cost * 100:.1f} % cost (<= {ISO30_TARGET * 100:g} %)" if cost is not None
            else f"<= {ISO30_TARGET * 100:g} % cost (no steady span)",
            ok(cost <= ISO30_TARGET) if cost is not None else "-")
        if dd and mb:
            dv = steady_rate(dd["samples"], dd["want_per_path"] * len(dd["paths"]))
            if dv:
                details.append(f"   isolation baseline vs D (same load, another run): {mb:,.0f}"
                               f" vs {dv:,.0f} deliveries/s ({mb / dv - 1:+.1%}: run-to-run noise)")
    fill = by_tag.get(("fill", "rss"))
    q = rss.get("queued")
    if fill or q:
        g = (fill or {}).get("gauges") or {}
        depth = g.get("depth", 0)
        want = (fill or {}).get("want", 0)
        complete = bool(fill and fill.get("queued_s") is not None)
        row(f"RSS with {depth:,} deliveries queued ({(fill or {}).get('endpoints', '?')} ep x"
            f" {(fill or {}).get('accepted', 0):,} ev, {(fill or {}).get('body_bytes', '?')} B)",
            f"{q['kib'] / 1024:.1f} MiB" if q else "-", "-",
            (f"<= {RSS_TARGET_MIB} MiB (VmHWM {q.get('hwm_kib', 0) / 1024:.1f})" if q else
             f"<= {RSS_TARGET_MIB} MiB") + ("" if complete else f" (only {depth:,}/{want:,})"),
            ok(q["kib"] <= RSS_TARGET_MIB * 1024 and complete) if q else "MISSED")
        if fill:
            details.append(
                f"   RSS: published {fill['accepted']:,} of {fill['events']:,} in"
                f" {fill['publish_s']:.1f} s ({fill['publish_errors']} errors"
                f"{': ' + fill['first_error'] if fill['first_error'] else ''}); endpoint queues:"
                f" depth {depth:,} of {want:,} (ready {g.get('ready', 0):,}, delayed"
                f" {g.get('delayed', 0):,}, in flight {g.get('in_flight', 0):,}), fan-out left"
                f" {g.get('fanout', '-')}; all queued after {fmt_s(fill.get('queued_s'))}")
    target_rows = len(rows)

    # 1. publish
    for n in (1, 10):
        e = by_tag.get(("wrk", f"publish{n}"))
        p = by_tag.get(("pg", f"pg{n}"))
        ev = e["ok_per_s"] if e else None
        pv = p["tps"] if p else None
        ratio = f"{ev / pv:.2f}x (no target)" if ev and pv else "(no target)"
        if e or p:
            row(f"publish/s, {n} endpoint{'s' if n > 1 else ''} (64 c, durable)", fmt_rate(ev),
                fmt_rate(pv), ratio, "-")
        if e:
            lua = e.get("lua") or {}
            d = info.get(f"publish{n}") or {}
            details.append(
                f"   evo publish, {n} endpoint(s): {e['ok_per_s']:,.0f} accepted/s ({lua.get('ok', 0):,}"
                f" of {lua.get('sent', 0):,} answered 202), p50 {e['p50_ms']} ms, p99"
                f" {e['p99_ms']} ms; non-202 {lua.get('non2xx', 0)} ({lua.get('statuses', '-')}),"
                f" socket errors {e['socket_errors']}; delivered meanwhile"
                f" {d.get('delivered', '-'):,} of {n * lua.get('ok', 0):,}"
                if isinstance(d.get("delivered"), int) else
                f"   evo publish, {n} endpoint(s): {e['ok_per_s']:,.0f} accepted/s")
        if p:
            details.append(
                f"   PostgreSQL outbox, {n} endpoint(s): {p['tps']:,.0f} tx/s ({p['tx']:,} tx,"
                f" {n} delivery row(s) each), latency avg {p['latency_avg_ms']} ms; failed"
                f" {p['failed']}, aborted clients {p['aborted']}")
    bad = [by_tag.get(("wrk", f"publish{n}")) for n in (1, 10)]
    bad = [b for b in bad if b]
    if bad:
        nb = sum(b["non2xx"] + b["socket_errors"] for b in bad)
        row("publish non-2xx + socket errors", str(nb), "-", "0", ok(nb == 0))

    # 2. delivery throughput
    d = by_tag.get(("deliver", "deliver"))
    cap = by_tag.get(("wrk", "listener"))
    capv = cap["ok_per_s"] if cap else None
    if d:
        paths = d["paths"]
        total = d["want_per_path"] * len(paths)
        t = d.get("all_done_s")
        rate = total / t if t else None
        if rate and capv:
            ratio = f"{rate / capv:.2f}x of capacity"
        else:
            ratio = "(no target)"
        row(f"deliveries/s, {len(paths)} ep x {d['want_per_path']:,} ev (publish->last)",
            fmt_rate(rate), fmt_rate(capv), ratio, "-" if t else "MISSED")
        st = steady_rate(d["samples"], total)
        row("   steady deliveries/s (10 %-90 % delivered)", fmt_rate(st), fmt_rate(capv),
            f"{st / capv:.2f}x of capacity" if st and capv else "(info)", "-")
        row(f"   all {total:,} delivered after", fmt_s(t), "-",
            f"within the {d['timeout_s']:.0f} s timeout", ok(t is not None))
        f = d.get("final") or {}
        dup, badsig = f.get("duplicates"), f.get("badSignatures")
        row("duplicates / bad signatures (listener)", f"{dup} / {badsig}", "-", "0 / 0",
            ok(dup == 0 and badsig == 0) if dup is not None else "-")
        details.append(
            f"   delivery: published {d['accepted']:,} of {d['events']:,} in"
            f" {fmt_s(d['publish_s'])} ({d['publish_errors']} errors"
            f"{': ' + d['first_error'] if d['first_error'] else ''}); first delivery after"
            f" {fmt_s(d['first_delivery_s'])}; all {len(d['done_s'])}/{len(paths)} endpoints"
            f" complete after {fmt_s(t)}; listener: received {f.get('received')}, distinct"
            f" {f.get('distinct')}, duplicates {dup}, bad signatures {badsig}, failed"
            f" {f.get('failed')}")
        if t is None and d.get("samples"):
            last = d["samples"][-1]
            details.append(f"   delivery TIMED OUT: {last[1]:,} of {total:,} distinct after"
                           f" {last[0]:.1f} s; {d.get('watch_error') or ''}")
    if cap:
        lua = cap.get("lua") or {}
        details.append(
            f"   listener capacity (wrk -c100, pre-signed): {capv:,.0f} deliveries/s, p50"
            f" {cap['p50_ms']} ms, p99 {cap['p99_ms']} ms; non-2xx {lua.get('non2xx', '-')}"
            f" ({lua.get('statuses', '-')}), socket errors {cap['socket_errors']}")

    # 3. isolation
    base = by_tag.get(("deliver", "iso_base"))
    badr = by_tag.get(("deliver", "iso_bad"))
    if base or badr:
        tb = base.get("all_done_s") if base else None
        tx = badr.get("all_done_s") if badr else None
        if tb and tx:
            slower = tx / tb - 1
            row(f"isolation: 8 healthy ep x {badr['want_per_path']:,} ev delivered in",
                fmt_s(tx), f"{fmt_s(tb)} alone", f"{slower * 100:+.0f} % (<= +20 %)",
                ok(slower <= ISOLATION_TARGET))
        else:
            row("isolation: 8 healthy endpoints delivered in", fmt_s(tx), fmt_s(tb),
                "<= +20 %", "MISSED")
        for tag, label in (("iso_base", "alone"), ("iso_bad", "beside slow + failing")):
            r = by_tag.get(("deliver", tag))
            if r:
                f = r.get("final") or {}
                details.append(
                    f"   isolation, 8 healthy {label}: published {r['accepted']:,} in"
                    f" {fmt_s(r['publish_s'])}; all delivered after {fmt_s(r['all_done_s'])};"
                    f" duplicates {f.get('duplicates')}, bad signatures {f.get('badSignatures')}")
        if badr:
            f = badr.get("final") or {}
            dup, badsig = f.get("duplicates"), f.get("badSignatures")
            b2 = (base or {}).get("final") or {}
            dup = (dup or 0) + (b2.get("duplicates") or 0)
            badsig = (badsig or 0) + (b2.get("badSignatures") or 0)
            row("   healthy duplicates / bad signatures", f"{dup} / {badsig}", "-", "0 / 0",
                ok(dup == 0 and badsig == 0))
        for name in ("slow", "failing"):
            s = info.get(f"iso_{name}")
            if s:
                details.append(f"   isolation, {name} endpoint's listener: {s.get('stats', '-')}")

    # 4. rate limit
    r = by_tag.get(("deliver", "rate"))
    if r:
        limit = (info.get("rate") or {}).get("limit", 50)
        want = r["want_per_path"]
        st = steady_rate(r["samples"], want)
        row(f"rate limit {limit:g}/s: steady rate (10 %-90 % of {want:,})",
            f"{st:.1f}/s" if st else "-", f"{limit:g}/s",
            f"{st / limit - 1:+.1%} (within ±5 %)" if st else "within ±5 %",
            ok(st is not None and abs(st / limit - 1) <= RATE_TOLERANCE))
        mw = max_window_rate(r["samples"], 1.0, lo=0.1 * want, hi=0.9 * want)
        first, t = r.get("first_delivery_s"), r.get("all_done_s")
        overall = (want / (t - first)) if t and first is not None and t > first else None
        row("   highest 1 s window / overall", f"{mw:.1f} / {overall:.1f}" if mw and overall
            else "-", "-", "(info)", "-")
        f = r.get("final") or {}
        details.append(
            f"   rate limit: published {r['accepted']:,} in {fmt_s(r['publish_s'])}; first"
            f" delivery {fmt_s(first)}, all after {fmt_s(t)}; {len(r['samples'])} samples;"
            f" duplicates {f.get('duplicates')}, bad signatures {f.get('badSignatures')}")

    # 5. RSS
    for phase, label in (("publish10", "evo RSS after the 10-endpoint publish run"),
                         ("deliver", "evo RSS after the delivery run"),
                         ("iso_bad", "evo RSS after the isolation run"),
                         ("rate", "evo RSS after the rate-limit run")):
        x = rss.get(phase)
        if x:
            row(label, f"{x['kib'] / 1024:.1f} MiB", "-",
                f"VmHWM {x.get('hwm_kib', 0) / 1024:.1f} MiB", "-")

    if details:
        print("\n-- details")
        for line in details:
            print(line)
    if rows:
        hdr = ("metric", "evo", "peer", "ratio/target", "ok/missed")
        w = [max(len(x[i]) for x in rows + [hdr]) for i in range(5)]
        print("\n-- summary: webhooks (the issue's targets first; then evo vs PostgreSQL outbox via"
              " pgbench, deliveries vs the listener's own capacity)")
        print(" | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
        print("-+-".join("-" * x for x in w))
        for k, x in enumerate(rows):
            if k == target_rows and 0 < target_rows < len(rows):
                print("-+-".join("-" * wi for wi in w))
            print(" | ".join((x[i].rjust(w[i]) if i in (1, 2) else x[i].ljust(w[i]))
                             for i in range(5)))
    for s in skipped:
        print(f"skipped: {s['name']}: {s['why']}")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "secret":
        cmd_secret()
    elif cmd == "setup":
        cmd_setup(args)
    elif cmd == "deliver":
        cmd_deliver(args)
    elif cmd == "presign":
        cmd_presign(args)
    elif cmd == "wrk":
        cmd_wrk(args)
    elif cmd == "pgbench":
        cmd_pgbench(args)
    elif cmd == "get":
        cmd_get(args[0])
    elif cmd == "steady":
        r = json.load(open(args[0]))
        v = steady_rate(r["samples"], r["want_per_path"] * len(r["paths"]))
        print(f"{v:.0f}" if v else "", end="")
    elif cmd == "emit":
        cmd_emit(args[0], args[1:])
    elif cmd == "report":
        cmd_report(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
