"""bench/bandit_report.py — parsing and the report for bench/bandit.sh (Debian's /usr/bin/python3,
standard library only). Every measurement is one JSON line; the report reads them back.

  bandit_report.py wrk --phase P --name N --conns C --threads T WRK_OUT...
                                          one run's rounds -> {"kind":"http",...} (medians)
  bandit_report.py count WRK_OUT          "REQ_PER_SEC OK_REQUESTS" of one wrk output (0 0 if none)
  bandit_report.py sum-pulls STATS.json   the sum of arms[].pulls, exit 1 when not that shape
  bandit_report.py emit KIND KEY=VALUE... one record (numbers stay numbers)
  bandit_report.py report RESULTS.jsonl   the tables
"""
import json
import statistics
import sys
from benchlib import cmd_emit, emit, parse_wrk

PULLS_TARGET = 100_000
MIX_TARGET = 60_000
P99_TARGET_MS = 2.0
RSS_TARGET_MIB = 200


def cmd_wrk(args):
    opts = {"--phase": "fresh", "--name": "?", "--conns": "64", "--threads": "2"}
    while args and args[0] in opts:
        opts[args[0]] = args[1]
        args = args[2:]
    runs = [parse_wrk(open(p).read(), "bandit.lua mix") for p in args]
    rps = [r["rps"] for r in runs]
    p99 = [r["p99_ms"] for r in runs]
    lua = None
    if any(r["lua"] for r in runs):
        lua = {}
        for r in runs:
            for k, v in (r["lua"] or {}).items():
                lua[k] = lua.get(k, 0) + v
    emit({"kind": "http", "phase": opts["--phase"], "name": opts["--name"],
          "conns": int(opts["--conns"]), "threads": int(opts["--threads"]),
          "rps_rounds": rps, "p99_ms_rounds": p99,
          "rps_median": statistics.median(rps) if rps else 0.0,
          "p99_ms_median": statistics.median([x for x in p99 if x is not None] or [0.0]),
          "requests": sum(r["requests"] for r in runs),
          "non2xx": sum(r["non2xx"] for r in runs),
          "socket_errors": sum(r["socket_errors"] for r in runs), "lua": lua})


def cmd_count(path):
    try:
        r = parse_wrk(open(path).read())
        print(f"{r['rps']:.0f} {max(0, r['requests'] - r['non2xx'])}")
    except OSError:
        print("0 0")


def cmd_sum_pulls(path):
    try:
        doc = json.load(open(path))
        print(sum(int(a["pulls"]) for a in doc["arms"]))
    except (OSError, ValueError, KeyError, TypeError):
        sys.exit(1)


# --- report --------------------------------------------------------------------------------------
def fmt_ms(x):
    return f"{x:.2f} ms" if isinstance(x, (int, float)) else "-"


def fmt_rate(x):
    return f"{x:,.0f}" if isinstance(x, (int, float)) else "-"


def verdict(values, ok):
    """ok / MISSED over the measured phases; '-' when nothing was measured."""
    got = [(ph, v) for ph, v in values if v is not None]
    if not got:
        return "-"
    missed = [ph for ph, v in got if not ok(v)]
    if not missed:
        return "ok"
    return "MISSED" if len(missed) == len(got) else f"MISSED ({', '.join(missed)})"


def cmd_report(path):
    recs = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    http = {(r["phase"], r["name"]): r for r in recs if r.get("kind") == "http"}
    rss = {r["phase"]: r for r in recs if r.get("kind") == "rss"}
    preload = next((r for r in recs if r.get("kind") == "preload"), None)
    dup = next((r for r in recs if r.get("kind") == "duplicate"), None)
    sim = next((r for r in recs if r.get("kind") == "simulate"), None)
    skipped = [r for r in recs if r.get("kind") == "skipped"]
    after_label = "after preload"
    if preload:
        after_label = f"after {preload.get('reached', 0):,} pulls"

    labels = {
        "pulls": "POST .../pulls, body {}",
        "mix": "pull -> reward mix (bench/bandit.lua)",
        "mix4": "pull -> reward mix, latency run",
    }
    for phase, title in (("fresh", "fresh"), ("after", after_label)):
        runs = [http[(phase, n)] for n in ("pulls", "mix", "mix4") if (phase, n) in http]
        if not runs:
            continue
        print(f"\n-- evo HTTP, {title} (medians of the rounds)")
        for r in runs:
            rounds = ", ".join(f"{x:,.0f}" for x in r["rps_rounds"])
            p99s = ", ".join(f"{x:.2f}" if x is not None else "?" for x in r["p99_ms_rounds"])
            print(f"{labels.get(r['name'], r['name'])}: wrk -t{r['threads']} -c{r['conns']}")
            print(f"   req/s {r['rps_median']:12,.0f}   (rounds: {rounds})")
            print(f"   p99   {r['p99_ms_median']:9.2f} ms   (rounds: {p99s})")
            line = f"   non-2xx {r['non2xx']}, socket errors {r['socket_errors']}"
            lua = r.get("lua")
            if lua:
                line += (f"; pulls sent {lua.get('pulls_sent', 0):,}, rewards sent"
                         f" {lua.get('rewards_sent', 0):,} ({lua.get('reward_ones', 0):,} of them 1),"
                         f" pull ids parsed {lua.get('ids', 0):,}, 409 {lua.get('status_409', 0)}")
            if r["non2xx"]:
                line += "   WARNING: not all responses were 2xx"
            print(line)

    # --- summary -------------------------------------------------------------------------------
    def get(phase, name, key):
        r = http.get((phase, name))
        return r[key] if r else None

    def rss_mib(phase):
        r = rss.get(phase)
        return r["kib"] / 1024 if r and isinstance(r.get("kib"), (int, float)) else None

    rows = []

    def row(label, fresh, after, target, ok, fmt):
        v = verdict([("fresh", fresh), ("after", after)], ok) if ok else "(no target)"
        rows.append((label, fmt(fresh) if fresh is not None else "-",
                     fmt(after) if after is not None else "-", target, v))

    for name, label, target, ok in (
        ("pulls", "pulls req/s (64 conns)", f">= {PULLS_TARGET:,}", lambda v: v >= PULLS_TARGET),
        ("mix", "mix req/s (64 conns)", f">= {MIX_TARGET:,}", lambda v: v >= MIX_TARGET),
    ):
        row(label, get("fresh", name, "rps_median"), get("after", name, "rps_median"), target, ok,
            fmt_rate)
    row("mix p99, 64 conns (2 wrk thr.)", get("fresh", "mix", "p99_ms_median"),
        get("after", "mix", "p99_ms_median"), f"<= {P99_TARGET_MS:g} ms",
        lambda v: v <= P99_TARGET_MS, fmt_ms)
    row("mix p99, 4 conns (1 wrk thr.)", get("fresh", "mix4", "p99_ms_median"),
        get("after", "mix4", "p99_ms_median"), f"<= {P99_TARGET_MS:g} ms",
        lambda v: v <= P99_TARGET_MS, fmt_ms)
    row("mix req/s, 4 conns", get("fresh", "mix4", "rps_median"), get("after", "mix4", "rps_median"),
        "", None, fmt_rate)
    row("pulls p99, 64 conns", get("fresh", "pulls", "p99_ms_median"),
        get("after", "pulls", "p99_ms_median"), "", None, fmt_ms)

    def bad(phase):
        rs = [http[(phase, n)] for n in ("pulls", "mix", "mix4") if (phase, n) in http]
        if not rs:
            return None
        return sum(r["non2xx"] + r["socket_errors"] for r in rs)

    row("non-2xx + socket errors", bad("fresh"), bad("after"), "0", lambda v: v == 0, str)

    def dup409(phase):
        rs = [http[(phase, n)] for n in ("mix", "mix4") if (phase, n) in http]
        if not rs or not any(r.get("lua") for r in rs):
            return None
        return sum((r.get("lua") or {}).get("status_409", 0) for r in rs)

    row("409 answers in the mix", dup409("fresh"), dup409("after"), "0", lambda v: v == 0, str)
    row("RSS (VmRSS)", rss_mib("fresh"), rss_mib("after"), f"<= {RSS_TARGET_MIB} MiB",
        lambda v: v <= RSS_TARGET_MIB, lambda v: f"{v:.1f} MiB")

    if not http:
        print("\n-- summary: bandit: no HTTP measurements (see skipped: below)")
        rows = []
    else:
        print("\n-- summary: bandit (wrk, medians of the interleaved rounds; fresh = new experiment,"
              f" after = {after_label})")
    w = max([len(r[0]) for r in rows] + [30])
    if rows:
        print(f"{'':{w}} {'fresh':>12} {'after':>12}   {'target':<12} result")
    for label, f, a, t, v in rows:
        print(f"{label:{w}} {f:>12} {a:>12}   {t:<12} {v}")
    if preload:
        reached = preload.get("reached", 0)
        target = preload.get("target", 0)
        ok = "ok" if reached >= target else "MISSED (stopped early)"
        print(f"{'preload':{w}} {fmt_rate(reached)} pulls, {fmt_rate(preload.get('added'))} of them"
              f" added in {preload.get('seconds', 0)} s ({fmt_rate(preload.get('rate'))} pulls/s,"
              f" counted by {preload.get('source', '?')}); target {fmt_rate(target)}: {ok}")
    if rss.get("idle") or rss.get("end"):
        parts = []
        if rss_mib("idle") is not None:
            parts.append(f"idle after start {rss_mib('idle'):.1f} MiB")
        if rss.get("end") and isinstance(rss["end"].get("hwm_kib"), (int, float)):
            parts.append(f"peak (VmHWM) {rss['end']['hwm_kib'] / 1024:.1f} MiB")
        if parts:
            print(f"{'RSS, more':{w}} " + ", ".join(parts))
    if dup:
        print(f"{'duplicate reward (sanity)':{w}} second reward for one pull answered"
              f" {dup.get('code')}: {'ok' if dup.get('code') == 409 else 'MISSED (expected 409)'}")
    if sim:
        print(f"{'evo bandit simulate':{w}} table above, {sim.get('seconds', 0):.1f} s")
    print("  closed loop: latency ~ connections / rate, so at 64 connections p99 includes queueing;"
          "\n  the 4-connection run (1 wrk thread) shows the service time at a lower load.")
    for r in skipped:
        print(f"skipped: {r['name']}: {r['why']}")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "wrk":
        cmd_wrk(args)
    elif cmd == "count":
        cmd_count(args[0])
    elif cmd == "sum-pulls":
        cmd_sum_pulls(args[0])
    elif cmd == "emit":
        cmd_emit(args[0], args[1:])
    elif cmd == "report":
        cmd_report(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
