"""bench/benchlib.py — what the bench/*_report.py helpers share (standard library only): the
one-JSON-line-per-measurement records, option parsing, and reading wrk's output."""
import json
import re


def emit(rec):
    """Prints one measurement record as a JSON line."""
    print(json.dumps(rec), flush=True)


def opts_from(args, defaults):
    """(options, rest): `--name value` pairs for the names in `defaults`, the other words."""
    opts = dict(defaults)
    rest = []
    while args:
        if args[0] in opts and len(args) > 1:
            opts[args[0]] = args[1]
            args = args[2:]
        else:
            rest.append(args[0])
            args = args[1:]
    return opts, rest


def to_ms(text):
    """wrk's "1.23ms" / "850.00us" / "1.02s" / "2m" in milliseconds; None otherwise."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def parse_wrk(text, lua_prefix):
    """wrk's output (with --latency): rps, p50/p75/p90/p99_ms, max_ms, requests, non2xx,
    socket_errors, and lua: the KEY=NUMBER pairs (and statuses=...) of the line the Lua
    script printed after "LUA_PREFIX:", or None when it printed none."""
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        out[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    out["max_ms"] = to_ms(m.group(3)) if m else None
    m = re.search(r"^\s*(\d+) requests in", text, re.M)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", text)
    out["socket_errors"] = sum(int(x) for x in re.findall(r"\d+", m.group(1))) if m else 0
    m = re.search(rf"^{re.escape(lua_prefix)}:(.*)$", text, re.M)
    lua = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))} if m else {}
    if m:
        sm = re.search(r"statuses=(\S+)", m.group(1))
        if sm:
            lua["statuses"] = sm.group(1)
    out["lua"] = lua or None
    return out


def cmd_emit(kind, pairs):
    """`emit KIND KEY=VALUE...` from the shell: one record, numbers kept as numbers."""
    rec = {"kind": kind}
    for p in pairs:
        k, _, v = p.partition("=")
        try:
            rec[k] = int(v)
        except ValueError:
            try:
                rec[k] = float(v)
            except ValueError:
                rec[k] = v
    emit(rec)
