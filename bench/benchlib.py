"""bench/benchlib.py — what the bench/*_report.py helpers share (standard library only): the
one-JSON-line-per-measurement records, option parsing, and wrk's duration syntax."""
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
