"""bench/queue_report.py — helpers and the report for bench/queue.sh (Debian's /usr/bin/python3,
standard library only). Every measurement is one JSON line; the report reads them back.

  queue_report.py gbench --json FILE         Google Benchmark JSON -> one record per median
  queue_report.py wrk --round R WRK_OUT      one wrk run with bench/queue.lua -> a record
  queue_report.py pgbench --round R --deletes N PGBENCH_OUT
                                             one pgbench run -> a record (N acked = deleted rows)
  queue_report.py load BASE_URL QUEUE N [--batch B] [--senders S] [--payload-bytes P]
                                             enqueue N messages in batches over HTTP -> a record
  queue_report.py first-lease BASE_URL QUEUE T0 [--timeout S]
                                             poll /readyz and POST .../leases until a lease comes
                                             back; seconds since T0 (unix time) -> a record
  queue_report.py stats QUEUE.json           "depth ready inFlight" (exit 1 if not that shape)
  queue_report.py emit KIND KEY=VALUE...     one record (numbers stay numbers)
  queue_report.py report RESULTS.jsonl       the tables
"""
import http.client
import json
import re
import statistics
import sys
import threading
import time
import urllib.parse
from benchlib import cmd_emit, emit, opts_from, parse_wrk

RATIO_TARGET = 2.0
INPROC_TARGET = 100_000
RSS_TARGET_MIB = 100
RESTART_TARGET_S = 2.0


# --- parsers ---------------------------------------------------------------------------------
def cmd_gbench(args):
    opts, _ = opts_from(args, {"--json": ""})
    doc = json.load(open(opts["--json"]))
    for b in doc.get("benchmarks", []):
        if b.get("aggregate_name") != "median" or "items_per_second" not in b:
            continue
        parts = b.get("run_name", b["name"]).split("/")
        batch = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        threads = int(b.get("threads", 1))
        m = re.search(r"threads:(\d+)", b.get("run_name", b["name"]))
        if m:
            threads = int(m.group(1))
        emit({"kind": "inproc", "name": b.get("run_name", b["name"]), "batch": batch,
              "threads": threads, "items_per_second": float(b["items_per_second"])})


def cmd_wrk(args):
    opts, files = opts_from(args, {"--round": "1"})
    out = {"kind": "evo_http", "round": int(opts["--round"])}
    out.update(parse_wrk(open(files[0]).read(), "queue.lua"))
    lua = out["lua"] or {}
    secs = lua.get("duration_us", 0) / 1e6
    out["seconds"] = secs
    out["msgs_per_s"] = lua.get("acked", 0) / secs if secs else 0.0
    emit(out)


def cmd_pgbench(args):
    opts, files = opts_from(args, {"--round": "1", "--deletes": "-1"})
    text = open(files[0]).read()
    out = {"kind": "pg", "round": int(opts["--round"])}
    m = re.search(r"number of transactions actually processed:\s+(\d+)", text)
    out["scripts"] = int(m.group(1)) if m else 0
    m = re.search(r"number of failed transactions:\s+(\d+)", text)
    out["failed"] = int(m.group(1)) if m else 0
    m = re.search(r"^tps = ([\d.]+)", text, re.M)
    out["tps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"latency average = ([\d.]+) ms", text)
    out["latency_avg_ms"] = float(m.group(1)) if m else None
    out["aborted"] = len(re.findall(r"client \d+ aborted", text))
    # per-statement latencies (-r): "   0.123  0  INSERT ...": keep the first word
    stmts = re.findall(r"^\s+([\d.]+)\s+\d+\s+(\w+|\\\w+)", text, re.M)
    out["stmt_ms"] = {w: float(v) for v, w in stmts if not w.startswith("\\")}
    deletes = int(opts["--deletes"])
    out["acked"] = deletes
    # tps counts script runs; one run acks at most one message. Seconds = runs / tps.
    secs = out["scripts"] / out["tps"] if out["tps"] else 0
    out["seconds"] = secs
    out["msgs_per_s"] = deletes / secs if secs and deletes >= 0 else out["tps"]
    emit(out)


def cmd_stats(path):
    try:
        d = json.load(open(path))
        print(int(d["depth"]), int(d.get("ready", -1)), int(d.get("inFlight", -1)))
    except (OSError, ValueError, KeyError, TypeError):
        sys.exit(1)


# --- HTTP clients ----------------------------------------------------------------------------
def conn_for(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def cmd_load(args):
    opts, rest = opts_from(args, {"--batch": "1000", "--senders": "4", "--payload-bytes": "100"})
    base, queue, total = rest[0].rstrip("/"), rest[1], int(rest[2])
    batch, senders = int(opts["--batch"]), int(opts["--senders"])
    text = "x" * max(1, int(opts["--payload-bytes"]) - len('{"n":1000000,"text":""}'))
    path = f"/v1/queues/{queue}/messages"
    batches = [min(batch, total - i) for i in range(0, total, batch)]
    lock = threading.Lock()
    state = {"next": 0, "sent": 0, "errors": 0, "first_error": "", "req_s": []}

    def sender():
        c = conn_for(base)
        while True:
            with lock:
                if state["next"] >= len(batches) or state["errors"] > 10:
                    break
                i = state["next"]
                state["next"] += 1
            n = batches[i]
            msgs = ",".join('{"payload":{"n":%d,"text":"%s"}}' % (i * batch + k, text)
                            for k in range(n))
            body = ('{"messages":[' + msgs + "]}").encode()
            t = time.monotonic()
            try:
                c.request("POST", path, body, {"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                ok = r.status == 201 and len(json.loads(data).get("ids", [])) == n
            except (OSError, http.client.HTTPException, ValueError) as e:
                ok, data = False, str(e).encode()
                c.close()
                c = conn_for(base)
            with lock:
                state["req_s"].append(time.monotonic() - t)
                if ok:
                    state["sent"] += n
                else:
                    state["errors"] += 1
                    if not state["first_error"]:
                        state["first_error"] = data[:200].decode(errors="replace")
        c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=sender) for _ in range(senders)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    req = sorted(state["req_s"]) or [0.0]
    emit({"kind": "load", "target": total, "sent": state["sent"], "errors": state["errors"],
          "first_error": state["first_error"], "seconds": round(secs, 2),
          "rate": state["sent"] / secs if secs else 0, "batch": batch, "senders": senders,
          "payload_bytes": len('{"n":1000000,"text":""}') + len(text),
          "batch_p50_ms": req[len(req) // 2] * 1e3, "batch_max_ms": req[-1] * 1e3})


def cmd_first_lease(args):
    opts, rest = opts_from(args, {"--timeout": "30"})
    base, queue, t0 = rest[0].rstrip("/"), rest[1], float(rest[2])
    deadline = t0 + float(opts["--timeout"])
    path = f"/v1/queues/{queue}/leases"
    body = b'{"max":1,"visibilitySeconds":30}'
    ready_s = lease_s = None
    last = ""
    attempts = 0
    c = None
    while time.time() < deadline:
        try:
            if c is None:
                c = conn_for(base)
                c.timeout = 5
            if ready_s is None:
                c.request("GET", "/readyz")
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    ready_s = time.time() - t0
            attempts += 1
            c.request("POST", path, body, {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            last = f"{r.status} {data[:160].decode(errors='replace')}"
            if r.status == 200 and json.loads(data).get("leases"):
                lease_s = time.time() - t0
                if ready_s is None:
                    ready_s = lease_s
                break
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = str(e)
            if c is not None:
                c.close()
            c = None
        time.sleep(0.005)
    emit({"kind": "restart", "ready_s": ready_s, "lease_s": lease_s, "attempts": attempts,
          "last": last})


# --- report ----------------------------------------------------------------------------------
def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def fmt_rate(x):
    return f"{x:,.0f}" if isinstance(x, (int, float)) else "-"


def fmt_ms(x):
    return f"{x:.2f} ms" if isinstance(x, (int, float)) else "-"


def cmd_report(path):
    recs = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    kinds = {}
    for r in recs:
        kinds.setdefault(r["kind"], []).append(r)
    inproc = kinds.get("inproc", [])
    evo = kinds.get("evo_http", [])
    pg = kinds.get("pg", [])
    load = (kinds.get("load") or [None])[-1]
    restart = (kinds.get("restart") or [None])[-1]
    rss = {r["phase"]: r for r in kinds.get("rss", [])}
    depth = {r["phase"]: r for r in kinds.get("depth", [])}
    skipped = kinds.get("skipped", [])

    if evo or pg:
        print(f"\n-- HTTP queue vs PostgreSQL SKIP LOCKED (enqueue -> lease -> ack, 64 connections;"
              f" medians of {max(len(evo), len(pg))} round(s))")
    for r in evo:
        lua = r.get("lua") or {}
        print(f"   evo round {r['round']}: {r['msgs_per_s']:,.0f} msg/s acked, {r['rps']:,.0f} req/s,"
              f" p50 {fmt_ms(r['p50_ms'])} p90 {fmt_ms(r['p90_ms'])} p99 {fmt_ms(r['p99_ms'])}"
              f" max {fmt_ms(r['max_ms'])}; non-2xx {r['non2xx']}, socket errors"
              f" {r['socket_errors']}")
        if lua:
            print(f"      enqueued {lua.get('enq_ok', 0):,}/{lua.get('enq_sent', 0):,},"
                  f" leased {lua.get('leased', 0):,}/{lua.get('lease_sent', 0):,}"
                  f" (empty {lua.get('lease_empty', 0):,}), acked {lua.get('acked', 0):,}/"
                  f"{lua.get('ack_sent', 0):,}; non-2xx by status: {lua.get('statuses', '-')}")
    for r in pg:
        st = ", ".join(f"{k} {v:.3f} ms" for k, v in r.get("stmt_ms", {}).items())
        print(f"   PostgreSQL round {r['round']}: {r['msgs_per_s']:,.0f} msg/s acked"
              f" ({r['acked']:,} deleted), {r['tps']:,.0f} scripts/s = {3 * r['tps']:,.0f}"
              f" statements/s, latency avg {fmt_ms(r['latency_avg_ms'])} per script;"
              f" failed {r['failed']}, aborted clients {r['aborted']}")
        if st:
            print(f"      per statement: {st}")

    rows = []

    def row(metric, e, p, target, verdict):
        rows.append((metric, e, p, target, verdict))

    def ok(flag):
        return "-" if flag is None else ("ok" if flag else "MISSED")

    for r in sorted(inproc, key=lambda r: (r["batch"], r["threads"])):
        v = r["items_per_second"]
        tgt = f">= {INPROC_TARGET:,}/s" if r["batch"] >= 100 else "(no target)"
        row(f"in-process msg/s, batch {r['batch']}, {r['threads']} thr", fmt_rate(v), "-", tgt,
            ok(v >= INPROC_TARGET) if r["batch"] >= 100 else "-")
    e_msgs = med([r["msgs_per_s"] for r in evo])
    p_msgs = med([r["msgs_per_s"] for r in pg])
    ratio = e_msgs / p_msgs if e_msgs is not None and p_msgs else None
    row("HTTP msg/s (enqueue+lease+ack, 64 c)", fmt_rate(e_msgs), fmt_rate(p_msgs),
        f"{ratio:.2f}x (>= {RATIO_TARGET:g}x)" if ratio is not None else f">= {RATIO_TARGET:g}x",
        ok(ratio >= RATIO_TARGET) if ratio is not None else "-")
    e_rps = med([r["rps"] for r in evo])
    p_sps = med([3 * r["tps"] for r in pg])
    row("requests/s (evo) | statements/s (PG)", fmt_rate(e_rps), fmt_rate(p_sps),
        f"{e_rps / p_sps:.2f}x" if e_rps and p_sps else "", "-")
    if evo:
        row("latency p50 / p99 per request", f"{fmt_ms(med([r['p50_ms'] for r in evo]))} / "
            f"{fmt_ms(med([r['p99_ms'] for r in evo]))}",
            f"avg {fmt_ms(med([r['latency_avg_ms'] / 3 for r in pg if r['latency_avg_ms']]))}"
            if pg else "-", "(no target)", "-")
        bad = sum(r["non2xx"] + r["socket_errors"] for r in evo)
        pbad = sum(r["failed"] + r["aborted"] for r in pg) if pg else None
        row("non-2xx + socket errors (PG: failed)", str(bad), "-" if pbad is None else str(pbad),
            "0", ok(bad == 0))
    if load:
        row(f"backlog load, batches of {load['batch']}", f"{load['rate']:,.0f} msg/s", "-",
            f"all {load['target']:,} stored", ok(load["sent"] >= load["target"] and not load["errors"]))

    def rss_row(phase, label):
        r = rss.get(phase)
        if not r:
            return
        mib = r["kib"] / 1024
        row(label, f"{mib:.1f} MiB", "-", f"<= {RSS_TARGET_MIB} MiB", ok(mib <= RSS_TARGET_MIB))
        if r.get("hwm_kib"):
            row(f"   peak (VmHWM) so far", f"{r['hwm_kib'] / 1024:.1f} MiB", "-", "(info)", "-")

    n = load["sent"] if load else 0
    rss_row("loaded", f"RSS with {n:,} queued")
    rss_row("restarted", f"RSS after restart, {n:,} queued")
    if restart:
        ls = restart.get("lease_s")
        row("restart (kill -9) -> first lease", f"{ls:.2f} s" if ls is not None else "none", "-",
            f"<= {RESTART_TARGET_S:g} s", ok(ls is not None and ls <= RESTART_TARGET_S))
        if restart.get("ready_s") is not None:
            row("   restart -> /readyz 200", f"{restart['ready_s']:.2f} s", "-", "(info)", "-")
    for phase, label in (("loaded", "depth before kill"), ("restarted", "depth after restart")):
        d = depth.get(phase)
        if d:
            want = d.get("want", -1)
            good = d["depth"] in (want, want - d.get("leased", 0))
            row(label, f"{d['depth']:,}", "-", f"= {want:,}", ok(good))

    if rows:
        w = [max(len(r[i]) for r in rows + [("metric", "evo", "peer", "ratio/target", "")])
             for i in range(5)]
        print("\n-- summary: queue (evo vs PostgreSQL FOR UPDATE SKIP LOCKED; in-process medians of"
              " 3 repetitions)")
        hdr = ("metric", "evo", "peer (PG)", "ratio/target", "ok/missed")
        w = [max(w[i], len(hdr[i])) for i in range(5)]
        print(" | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
        print("-+-".join("-" * x for x in w))
        for r in rows:
            print(" | ".join((r[i].rjust(w[i]) if i in (1, 2) else r[i].ljust(w[i]))
                             for i in range(5)))
    if load and load.get("errors"):
        print(f"backlog load errors: {load['errors']} (first: {load['first_error']})")
    if restart and restart.get("lease_s") is None:
        print(f"restart: no lease after {restart.get('attempts')} attempts; last answer:"
              f" {restart.get('last')}")
    for r in skipped:
        print(f"skipped: {r['name']}: {r['why']}")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "gbench":
        cmd_gbench(args)
    elif cmd == "wrk":
        cmd_wrk(args)
    elif cmd == "pgbench":
        cmd_pgbench(args)
    elif cmd == "load":
        cmd_load(args)
    elif cmd == "first-lease":
        cmd_first_lease(args)
    elif cmd == "stats":
        cmd_stats(args[0])
    elif cmd == "emit":
        cmd_emit(args[0], args[1:])
    elif cmd == "report":
        cmd_report(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
