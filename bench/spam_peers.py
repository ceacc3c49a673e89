#!/usr/bin/python3
"""Helpers of bench/spam.sh: the fixed Enron1 split, the peers (scikit-learn, bogofilter),
the parsing of evo's outputs and the final report. Run with Debian's /usr/bin/python3
(python3-sklearn). Every measurement is one JSON line on stdout; the report reads them back.

  spam_peers.py split CORPUS OUT        OUT/{train,test}/{ham,spam} (hard links), OUT/mail/...
                                        (bogofilter copies), OUT/body.json (the wrk body)
  spam_peers.py sklearn OUT [--cv CORPUS]   ComplementNB and LinearSVC, one line each
  spam_peers.py bogofilter OUT          bogofilter, trained and classified in bulk mode
  spam_peers.py evo-eval FILE           evo spam eval --format json -> one line
  spam_peers.py gbench FILE             Google Benchmark JSON -> one line per benchmark
  spam_peers.py wrk [--conns N] [--threads T] FILE...
                                        wrk --latency outputs (one per round) -> one line
  spam_peers.py report RESULTS.jsonl    the tables

Split: a file is TEST when int(sha256(basename)[:8 hex digits]) % 10 < 3, else TRAIN
(Enron1: 3571 train / 1601 test, of which 1152 ham + 449 spam).
"""
import os

# Single-threaded peers: set before numpy/scipy load their BLAS.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import hashlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

LABELS = ("ham", "spam")
REPS = 3


def is_test(name):
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 10 < 3


def emit(rec):
    print(json.dumps(rec), flush=True)


# --- split -----------------------------------------------------------------------------------
def link(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def as_mail(data):
    """The Enron files are 'Subject: ...' then the body with no blank line between, so a mail
    parser reads the whole body as header lines (bogofilter tags every body token 'head:').
    Insert the blank line that ends the header, in the file's own line ending."""
    i = data.find(b"\n")
    if i < 0:
        return data + b"\n\n"
    eol = b"\r\n" if i > 0 and data[i - 1:i] == b"\r" else b"\n"
    return data[:i + 1] + eol + data[i + 1:]


def cmd_split(corpus, out):
    counts = {}
    for lab in LABELS:
        for split in ("train", "test"):
            os.makedirs(os.path.join(out, split, lab), exist_ok=True)
            os.makedirs(os.path.join(out, "mail", split, lab), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(corpus, lab))):
            src = os.path.join(corpus, lab, name)
            if not os.path.isfile(src):
                continue
            split = "test" if is_test(name) else "train"
            link(src, os.path.join(out, split, lab, name))
            with open(src, "rb") as f:
                data = f.read()
            with open(os.path.join(out, "mail", split, lab, name), "wb") as f:
                f.write(as_mail(data))
            counts[f"{split}_{lab}"] = counts.get(f"{split}_{lab}", 0) + 1

    # wrk body: the test spam message whose JSON body is closest to 1 KiB.
    best = None
    spam_dir = os.path.join(out, "test", "spam")
    for name in sorted(os.listdir(spam_dir)):
        with open(os.path.join(spam_dir, name), encoding="latin-1") as f:
            body = json.dumps({"text": f.read()})
        key = abs(len(body) - 1024)
        if best is None or key < best[0]:
            best = (key, name, body)
    with open(os.path.join(out, "body.json"), "w") as f:
        f.write(best[2])
    counts["body_file"] = best[1]
    counts["body_bytes"] = len(best[2])
    emit(counts)


def load(out, split):
    texts, y, names = [], [], []
    for lab in LABELS:
        d = os.path.join(out, split, lab)
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), encoding="latin-1") as f:
                texts.append(f.read())
            y.append(1 if lab == "spam" else 0)
            names.append(name)
    return texts, y, names


# --- metrics (the same definitions for every contender) ---------------------------------------
def recall_at_ham(y, score, ham_recall):
    """Spam recall at the strictest threshold that still keeps ham recall >= ham_recall:
    at most floor((1 - ham_recall) * n_ham) ham messages may score at or above it."""
    ham = sorted((s for s, t in zip(score, y) if t == 0), reverse=True)
    spam = [s for s, t in zip(score, y) if t == 1]
    k = int((1 - ham_recall) * len(ham) + 1e-9)
    if k >= len(ham):
        return 1.0
    cut = ham[k]  # the (k+1)-th highest ham score must stay below the threshold
    return sum(1 for s in spam if s > cut) / len(spam)


def auc(y, score):
    """ROC AUC (Mann-Whitney, ties count half)."""
    pairs = sorted(zip(score, y))
    n_pos = sum(y)
    n_neg = len(y) - n_pos
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2  # ranks i+1 .. j
        rank_sum += avg_rank * sum(t for _, t in pairs[i:j])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def quality(y, pred, score=None, unsure=0):
    tp = sum(1 for p, t in zip(pred, y) if p == 1 and t == 1)
    tn = sum(1 for p, t in zip(pred, y) if p == 0 and t == 0)
    fp = sum(1 for p, t in zip(pred, y) if p == 1 and t == 0)
    fn = sum(1 for p, t in zip(pred, y) if p == 0 and t == 1)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    rec = {
        "accuracy": (tp + tn) / len(y),
        "spam_recall": recall,
        "ham_recall": tn / (tn + fp) if tn + fp else 0.0,
        "precision": precision,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "unsure": unsure,
        "errors": f"{fp} FP, {fn} FN",
    }
    if score is not None:
        rec["roc_auc"] = auc(y, score)
        rec["spam_recall_at_ham_99_5"] = recall_at_ham(y, score, 0.995)
        rec["spam_recall_at_ham_99_9"] = recall_at_ham(y, score, 0.999)
    return rec


# --- scikit-learn --------------------------------------------------------------------------------
def cmd_sklearn(out, cv_corpus=None):
    import warnings

    import numpy as np
    import sklearn
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.naive_bayes import ComplementNB
    from sklearn.svm import LinearSVC

    warnings.filterwarnings("ignore")
    train_x, train_y, _ = load(out, "train")
    test_x, test_y, _ = load(out, "test")

    def cnb_score(model, x):
        if hasattr(model, "predict_joint_log_proba"):  # sklearn >= 1.2
            jll = model.predict_joint_log_proba(x)
        else:
            jll = model.predict_log_proba(x)
        return jll[:, 1] - jll[:, 0]

    contenders = [
        ("sklearn ComplementNB", "CountVectorizer(token_pattern=r'\\S+') + ComplementNB()",
         lambda: CountVectorizer(token_pattern=r"\S+"), lambda: ComplementNB(), cnb_score),
        ("sklearn LinearSVC",
         "TfidfVectorizer(token_pattern=r'\\S+', sublinear_tf=True) + LinearSVC(random_state=0)",
         lambda: TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True),
         lambda: LinearSVC(random_state=0), lambda m, x: m.decision_function(x)),
    ]
    for name, detail, make_vec, make_model, scorer in contenders:
        train_times = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            vec = make_vec()
            xtr = vec.fit_transform(train_x)
            model = make_model().fit(xtr, train_y)
            train_times.append(time.perf_counter() - t0)
        classify_times = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            pred = model.predict(vec.transform(test_x))
            classify_times.append(time.perf_counter() - t0)
        score = scorer(model, vec.transform(test_x))
        rec = {"kind": "quality", "name": name, "detail": detail,
               "version": f"scikit-learn {sklearn.__version__}"}
        rec.update(quality(test_y, [int(p) for p in pred], [float(s) for s in score]))
        rec["train_seconds"] = statistics.median(train_times)
        rec["classify_msgs_per_sec"] = len(test_x) / statistics.median(classify_times)
        rec["features"] = len(vec.vocabulary_)
        if cv_corpus:
            rec["cv_mean_accuracy"] = cv10(cv_corpus, make_vec, make_model, np)
        emit(rec)


def cv10(corpus, make_vec, make_model, np):
    """10-fold stratified CV (shuffled, seed 0) on the whole corpus: mean accuracy."""
    from sklearn.model_selection import StratifiedKFold

    texts, y = [], []
    for lab in LABELS:
        d = os.path.join(corpus, lab)
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), encoding="latin-1") as f:
                texts.append(f.read())
            y.append(1 if lab == "spam" else 0)
    texts, y = np.array(texts, dtype=object), np.array(y)
    accs = []
    for tr, te in StratifiedKFold(10, shuffle=True, random_state=0).split(texts, y):
        vec = make_vec()
        model = make_model().fit(vec.fit_transform(texts[tr]), y[tr])
        accs.append(float((model.predict(vec.transform(texts[te])) == y[te]).mean()))
    return statistics.mean(accs)


# --- bogofilter ----------------------------------------------------------------------------------
def cmd_bogofilter(out):
    bogo = shutil.which("bogofilter")
    if not bogo:
        emit({"kind": "skipped", "name": "bogofilter", "why": "bogofilter not installed"})
        return
    version = subprocess.run([bogo, "-V"], capture_output=True, text=True).stdout.split("\n")[0]
    mail = os.path.join(out, "mail")

    def files(split, lab):
        d = os.path.join(mail, split, lab)
        return "".join(os.path.join(d, n) + "\n" for n in sorted(os.listdir(d)))

    # -C: compiled-in defaults only (no /etc/bogofilter.cf); -b: file names on stdin (bulk).
    train_spam, train_ham = files("train", "spam"), files("train", "ham")
    test_list = files("test", "ham") + files("test", "spam")
    train_times, db = [], None
    for _ in range(REPS):
        db = tempfile.mkdtemp(dir=out, prefix="bogodb.")
        t0 = time.perf_counter()
        subprocess.run([bogo, "-C", "-d", db, "-s", "-b"], input=train_spam, text=True,
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([bogo, "-C", "-d", db, "-n", "-b"], input=train_ham, text=True,
                       check=True, stdout=subprocess.DEVNULL)
        train_times.append(time.perf_counter() - t0)
    classify_times, lines = [], []
    for _ in range(REPS):
        t0 = time.perf_counter()
        # exit status is the verdict of the last message (0 spam, 1 ham, 2 unsure), 3 = error
        r = subprocess.run([bogo, "-C", "-d", db, "-T", "-b"], input=test_list, text=True,
                           capture_output=True)
        classify_times.append(time.perf_counter() - t0)
        if r.returncode == 3:
            raise SystemExit(f"bogofilter -T failed: {r.stderr.strip()}")
        lines = r.stdout.splitlines()
    # -T rounds the spamicity to 6 digits; -TT (untimed) prints it to 16 for the ranking metrics.
    exact = subprocess.run([bogo, "-C", "-d", db, "-TT", "-b"], input=test_list, text=True,
                           capture_output=True).stdout.splitlines()
    exact = dict(line.rsplit(None, 1) for line in exact)
    y, verdict, score = [], [], []
    for line in lines:  # "PATH S|H|U SPAMICITY"
        path, v, _ = line.rsplit(None, 2)
        y.append(1 if os.path.basename(os.path.dirname(path)) == "spam" else 0)
        verdict.append(v)
        score.append(float(exact[path]))
    n_test = test_list.count("\n")
    if len(y) != n_test or len(exact) != n_test:
        raise SystemExit(f"bogofilter classified {len(y)} of {n_test} test files")
    common = {"kind": "quality", "version": version,
              "train_seconds": statistics.median(train_times),
              "classify_msgs_per_sec": n_test / statistics.median(classify_times)}
    # Tristate defaults (spam_cutoff 0.99, ham_cutoff 0.45); Unsure counts as not spam.
    rec = {"name": "bogofilter", "detail": "defaults (-C), tristate; Unsure counted as ham"}
    rec.update(common)
    rec.update(quality(y, [1 if v == "S" else 0 for v in verdict], score,
                       unsure=verdict.count("U")))
    emit(rec)
    # The same scores, two-state at spamicity 0.5 (bogofilter -o 0.5,0.5 gives the same).
    rec = {"name": "bogofilter @0.5", "detail": "same run, two-state at spamicity >= 0.5"}
    rec.update(common)
    rec.update(quality(y, [1 if s >= 0.5 else 0 for s in score], score))
    emit(rec)


# --- evo outputs ---------------------------------------------------------------------------------
def cmd_evo_eval(path):
    with open(path) as f:
        doc = json.load(f)
    test = doc.get("test", {})
    rec = {"kind": "quality", "name": "evo", "detail": "evo spam eval --format json"}
    for k in ("accuracy", "spam_recall", "ham_recall", "precision", "f1", "roc_auc",
              "spam_recall_at_ham_99_5", "spam_recall_at_ham_99_9", "unsure"):
        if k in test:
            rec[k] = test[k]
    for k in ("train_seconds", "classify_msgs_per_sec"):
        if k in doc:
            rec[k] = doc[k]
    cv = doc.get("cv", {})
    if "mean_accuracy" in cv:
        rec["cv_mean_accuracy"] = cv["mean_accuracy"]
        rec["cv_folds"] = cv.get("folds")
    emit(rec)


def cmd_gbench(path):
    with open(path) as f:
        doc = json.load(f)
    benches = doc.get("benchmarks", [])
    if any(b.get("run_type") == "aggregate" for b in benches):
        benches = [b for b in benches if b.get("aggregate_name") == "median"]
    for b in benches:
        name = b.get("run_name") or re.sub(r"_median$", "", b["name"])
        emit({"kind": "gbench", "name": name, "items_per_second": b.get("items_per_second"),
              "real_time": b.get("real_time"), "time_unit": b.get("time_unit", "ns")})


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def cmd_wrk(args):
    conns, threads = 64, 2
    while args and args[0] in ("--conns", "--threads"):
        if args[0] == "--conns":
            conns = int(args[1])
        else:
            threads = int(args[1])
        args = args[2:]
    paths = args
    rps, p99, non2xx, sock = [], [], 0, 0
    for p in paths:
        text = open(p).read()
        m = re.search(r"Requests/sec:\s+([\d.]+)", text)
        rps.append(float(m.group(1)) if m else 0.0)
        m = re.search(r"^\s+99%\s+(\S+)", text, re.M)
        p99.append(to_ms(m.group(1)) if m else None)
        m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        non2xx += int(m.group(1)) if m else 0
        m = re.search(r"Socket errors:(.*)", text)
        if m:
            sock += sum(int(x) for x in re.findall(r"\d+", m.group(1)))
    emit({"kind": "http", "conns": conns, "threads": threads, "rps_rounds": rps, "p99_ms_rounds": p99,
          "rps_median": statistics.median(rps) if rps else 0.0,
          "p99_ms_median": statistics.median([x for x in p99 if x is not None] or [0.0]),
          "non2xx": non2xx, "socket_errors": sock})


# --- report --------------------------------------------------------------------------------------
def pct(x):
    return f"{100 * x:6.2f}%" if isinstance(x, (int, float)) else "     -"


def cmd_report(path):
    recs = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    q = {r["name"]: r for r in recs if r.get("kind") == "quality"}
    order = ["evo", "sklearn LinearSVC", "sklearn ComplementNB", "bogofilter", "bogofilter @0.5"]
    rows = [q[n] for n in order if n in q]
    evo = q.get("evo")

    print("\n-- quality on the held-out test split (1601 messages: 1152 ham, 449 spam)")
    print(f"{'':22} {'accuracy':>8} {'spam rec':>8} {'ham rec':>8} {'precis.':>8} {'F1':>8}"
          f" {'ROC AUC':>8} {'sr@hr99.5':>9} {'sr@hr99.9':>9} {'unsure':>6} {'CV10 acc':>8}")
    for r in rows:
        auc_s = f"{r['roc_auc']:8.4f}" if isinstance(r.get("roc_auc"), (int, float)) else "       -"
        print(f"{r['name']:22} {pct(r.get('accuracy')):>8} {pct(r.get('spam_recall')):>8}"
              f" {pct(r.get('ham_recall')):>8} {pct(r.get('precision')):>8} {pct(r.get('f1')):>8}"
              f" {auc_s} {pct(r.get('spam_recall_at_ham_99_5')):>9}"
              f" {pct(r.get('spam_recall_at_ham_99_9')):>9} {r.get('unsure', '-')!s:>6}"
              f" {pct(r.get('cv_mean_accuracy')):>8}")
    print("  sr@hrX = spam recall with the threshold moved until ham recall >= X (from the"
          " scores)\n  CV10: sklearn = StratifiedKFold(10, shuffle, seed 0) on the whole corpus;"
          " evo = its own folds")

    print("\n-- speed (train: whole train split, 3571 messages; classify: test split,"
          " single thread; medians of 3)")
    print(f"{'':22} {'train s':>8} {'classify msg/s':>15} {'classify evo/peer':>18}"
          f" {'train time evo/peer':>20}")
    for r in rows:
        ts, mps = r.get("train_seconds"), r.get("classify_msgs_per_sec")
        ratio_c = ratio_t = "-"
        if evo and r is not evo:
            if mps and evo.get("classify_msgs_per_sec"):
                ratio_c = f"{evo['classify_msgs_per_sec'] / mps:.2f}x"
            if ts and evo.get("train_seconds"):
                ratio_t = f"{evo['train_seconds'] / ts:.2f}x"
        ts_s = f"{ts:8.3f}" if isinstance(ts, (int, float)) else "       -"
        mps_s = f"{mps:15,.0f}" if isinstance(mps, (int, float)) else "              -"
        print(f"{r['name']:22} {ts_s} {mps_s} {ratio_c:>18} {ratio_t:>20}")
    print("  evo is faster where classify evo/peer > 1x and where train time evo/peer < 1x."
          " sklearn times exclude file reading"
          " (texts in memory);\n  bogofilter times are whole processes reading the files"
          " (bulk mode -b, one process per run).")
    if not evo:
        print("  evo: skipped (no quality numbers), so no ratios")

    for r in rows:
        parts = [r.get("detail"), r.get("version"), r.get("errors")]
        print(f"  {r['name']}: " + "; ".join(x for x in parts if x))

    g = [r for r in recs if r.get("kind") == "gbench"]
    if g:
        print("\n-- evo micro-benchmarks (bench/spam_benchmark, median of 3 repetitions)")
        width = max(len(r["name"]) for r in g)
        for r in g:
            ips = r.get("items_per_second")
            ips_s = f"{ips:15,.0f} items/s" if isinstance(ips, (int, float)) else \
                f"{r.get('real_time', 0):15,.1f} {r.get('time_unit')} (no items/s)"
            print(f"{r['name']:{width}} {ips_s}")

    for r in [r for r in recs if r.get("kind") == "http"]:
        rounds = ", ".join(f"{x:,.0f}" for x in r["rps_rounds"])
        p99s = ", ".join(f"{x:.2f}" if x is not None else "?" for x in r["p99_ms_rounds"])
        ok_r = "ok" if r["rps_median"] >= 20000 else "MISSED"
        ok_p = "ok" if r["p99_ms_median"] <= 2.0 else "MISSED"
        if r.get("conns", 64) >= 16:
            # Peak-rate run: with C connections in a closed loop, latency ~ C / rate.
            ok_p = f"n/a: peak-rate run, {r.get('conns', 64)} in flight"
        print(f"\n-- evo HTTP POST /v1/spam/classify (wrk, {r.get('conns', 64)} connections,"
              f" {r.get('threads', 2)} thread(s), ~1 KiB body, topTokens on)")
        print(f"req/s (median of rounds)   {r['rps_median']:12,.0f}   target >= 20,000  {ok_r}"
              f"   (rounds: {rounds})")
        print(f"p99 latency (median)       {r['p99_ms_median']:12.2f} ms target <= 2 ms    {ok_p}"
              f"   (rounds: {p99s})")
        print(f"non-2xx responses          {r['non2xx']:12d}   socket errors {r['socket_errors']}"
              + ("   WARNING: not all responses were 2xx" if r["non2xx"] else ""))

    skipped = [r for r in recs if r.get("kind") == "skipped"]
    for r in skipped:
        print(f"skipped: {r['name']}: {r['why']}")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "split":
        cmd_split(*args)
    elif cmd == "sklearn":
        cv = args[args.index("--cv") + 1] if "--cv" in args else None
        cmd_sklearn(args[0], cv)
    elif cmd == "bogofilter":
        cmd_bogofilter(args[0])
    elif cmd == "evo-eval":
        cmd_evo_eval(args[0])
    elif cmd == "gbench":
        cmd_gbench(args[0])
    elif cmd == "wrk":
        cmd_wrk(args)
    elif cmd == "report":
        cmd_report(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
