"""End-to-end tests of the spam module on the real binary: training, classification, model
versions and rollback, feedback that survives kill -9, classification during training, hostile
input, the `evo spam` CLI, and the OpenAPI document and metrics.

Most tests train on a small fixed subset of Enron1 (the first 150 ham and 100 spam files, in
name order), which takes milliseconds; only the training-under-load test uses the full corpus.
Messages to classify come from the end of the corpus, outside the subset.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import requests

import harness
from harness import EVO, is_problem, raw_request, status_of

ENRON = os.environ.get("EVO_ENRON_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "..", "..", "build", "testdata", "enron1"))
JSON = {"Content-Type": "application/json"}


def Evo(*args, **kwargs):  # noqa: N802 (stands in for harness.Evo)
    """harness.Evo with directory training allowed anywhere (the corpus lives in temporary
    directories); CorpusRoot tests the option itself."""
    extra = list(kwargs.pop("args", ()))
    return harness.Evo(*args, args=["--spam-corpus-root", "/"] + extra, **kwargs)


def corpus_files(label):
    d = os.path.join(ENRON, label)
    return [os.path.join(d, f) for f in sorted(os.listdir(d))]


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def make_subset(root, ham=150, spam=100, offset=0):
    """Copies ham + spam corpus files (in name order, from `offset`) into root/ham, root/spam."""
    for label, n in (("ham", ham), ("spam", spam)):
        os.makedirs(os.path.join(root, label))
        for f in corpus_files(label)[offset:offset + n]:
            shutil.copy(f, os.path.join(root, label))
    return root


class Corpus:
    """Held-out messages and a training subset shared by the tests of one class."""

    @classmethod
    def setUpCorpus(cls):
        if not os.path.isdir(os.path.join(ENRON, "ham")):
            raise RuntimeError("Enron1 corpus not unpacked at %s (ninja enron_corpus)" % ENRON)
        cls._tmp = tempfile.TemporaryDirectory(prefix="evo-e2e-spam-")
        cls.subset = make_subset(os.path.join(cls._tmp.name, "subset"))
        # Clear cases from outside the subset (the last files of each class, name order).
        cls.spam_file = corpus_files("spam")[-1]
        cls.ham_file = corpus_files("ham")[-1]
        cls.held_out_spam = [read(f) for f in corpus_files("spam")[-10:]]
        cls.held_out_ham = [read(f) for f in corpus_files("ham")[-10:]]

    @classmethod
    def tearDownCorpus(cls):
        cls._tmp.cleanup()


def train(evo, expect=201, **body):
    r = evo.post("/v1/spam/models", json=body, timeout=120)
    assert r.status_code == expect, (r.status_code, r.text)
    return r.json()


def classify(evo, text, **extra):
    r = evo.post("/v1/spam/classify", json=dict(text=text, **extra))
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def inline_messages():
    spam = ["Buy cheap pills now, limited offer %d, click here" % i for i in range(8)]
    ham = ["Meeting about the gas nomination for plant %d moved to Tuesday" % i for i in range(8)]
    return [{"text": t, "label": "spam"} for t in spam] + [{"text": t, "label": "ham"} for t in ham]


class HappyPath(Corpus, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()
        cls.evo = Evo()
        r = cls.evo.post("/v1/spam/models", json={"directory": cls.subset}, timeout=120)
        cls.train_response = r

    @classmethod
    def tearDownClass(cls):
        cls.evo.cleanup()
        cls.tearDownCorpus()

    def assert_classification(self, c, version=1):
        self.assertEqual(set(c), {"label", "probability", "unsure", "modelVersion", "topTokens"})
        self.assertIn(c["label"], ("spam", "ham"))
        self.assertGreaterEqual(c["probability"], 0)
        self.assertLessEqual(c["probability"], 1)
        self.assertIsInstance(c["unsure"], bool)
        self.assertEqual(c["modelVersion"], version)
        self.assertIsInstance(c["topTokens"], list)
        for t in c["topTokens"]:
            self.assertEqual(set(t), {"token", "weight", "direction"})
            self.assertIsInstance(t["token"], str)
            self.assertEqual(t["direction"], "spam" if t["weight"] > 0 else "ham")

    def test_training_answers_201_with_location_and_metrics(self):
        r = self.train_response
        self.assertEqual(r.status_code, 201, r.text)
        self.assertEqual(r.headers["Location"], "/v1/spam/models/1")
        m = r.json()
        self.assertEqual(m["version"], 1)
        self.assertTrue(m["active"])  # the first version is always activated
        self.assertEqual((m["messages"], m["ham"], m["spam"]), (250, 150, 100))
        self.assertEqual(m["feedback"], 0)
        self.assertGreater(m["features"], 0)
        self.assertGreater(m["threshold"], 0)
        self.assertLess(m["threshold"], 1)
        cv = m["metrics"]["crossValidation"]
        for k in ("accuracy", "spam_recall", "ham_recall", "precision", "f1", "roc_auc"):
            self.assertGreaterEqual(cv[k], 0, k)
            self.assertLessEqual(cv[k], 1, k)
        self.assertGreater(cv["accuracy"], 0.8)
        self.assertNotIn("skipped", m["metrics"])  # every subset file is a message

    def test_clear_spam_and_clear_ham(self):
        spam = classify(self.evo, read(self.spam_file))
        self.assert_classification(spam)
        self.assertEqual(spam["label"], "spam")
        self.assertGreater(spam["probability"], 0.5)
        self.assertTrue(spam["topTokens"])
        ham = classify(self.evo, read(self.ham_file))
        self.assert_classification(ham)
        self.assertEqual(ham["label"], "ham")
        self.assertLess(ham["probability"], 0.5)
        self.assertTrue(ham["topTokens"])
        # A plain-text body with a separate subject is accepted too.
        self.assert_classification(classify(self.evo, "see you at the meeting", subject="lunch"))

    def test_batch_matches_single_calls_in_order(self):
        texts = [t for pair in zip(self.held_out_spam, self.held_out_ham) for t in pair]
        self.assertEqual(len(texts), 20)
        r = self.evo.post("/v1/spam/classify:batch",
                          json={"messages": [{"text": t} for t in texts]})
        self.assertEqual(r.status_code, 200, r.text)
        results = r.json()["results"]
        self.assertEqual(len(results), 20)
        for text, batch in zip(texts, results):
            self.assert_classification(batch)
            self.assertEqual(batch, classify(self.evo, text))
        # In order: alternating spam/ham inputs give mostly alternating labels.
        right = sum(res["label"] == ("spam" if i % 2 == 0 else "ham")
                    for i, res in enumerate(results))
        self.assertGreaterEqual(right, 16)

    def test_list_and_get(self):
        r = self.evo.get("/v1/spam/models")
        self.assertEqual(r.status_code, 200)
        body = r.json()
        self.assertEqual(body["activeVersion"], 1)
        self.assertEqual([m["version"] for m in body["models"]], [1])
        self.assertTrue(body["models"][0]["active"])
        r = self.evo.get("/v1/spam/models/1")
        self.assertEqual(r.status_code, 200)
        m = r.json()
        self.assertEqual(m["version"], 1)
        self.assertEqual(m["family"], "linear")
        self.assertTrue(m["active"])
        self.assertIn("crossValidation", m["metrics"])
        self.assertRegex(m["createdAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        self.assertEqual(m, body["models"][0])


class Versions(Corpus, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()
        cls.other = make_subset(os.path.join(cls._tmp.name, "other"), ham=100, spam=80,
                                offset=300)

    @classmethod
    def tearDownClass(cls):
        cls.tearDownCorpus()

    def version_of_answers(self, evo):
        return classify(evo, read(self.spam_file))["modelVersion"]

    def test_activate_rollback_and_restart(self):
        with tempfile.TemporaryDirectory() as d:
            evo = Evo(data_dir=d)
            try:
                self.assertEqual(train(evo, directory=self.subset)["version"], 1)
                v2 = train(evo, directory=self.other)  # no "activate": 1 stays active
                self.assertEqual(v2["version"], 2)
                self.assertFalse(v2["active"])
                self.assertEqual((v2["ham"], v2["spam"]), (100, 80))
                self.assertEqual(self.version_of_answers(evo), 1)
                self.assertEqual(evo.get("/v1/spam/models").json()["activeVersion"], 1)

                r = evo.post("/v1/spam/models/2:activate")
                self.assertEqual(r.status_code, 200, r.text)
                self.assertEqual(r.json()["version"], 2)
                self.assertTrue(r.json()["active"])
                self.assertEqual(self.version_of_answers(evo), 2)
                self.assertFalse(evo.get("/v1/spam/models/1").json()["active"])

                r = evo.post("/v1/spam/models/1:activate")  # roll back
                self.assertEqual(r.status_code, 200, r.text)
                self.assertEqual(self.version_of_answers(evo), 1)
                # Activating the active version again is harmless.
                self.assertEqual(evo.post("/v1/spam/models/1:activate").status_code, 200)
                self.assertEqual(evo.terminate(), 0)
            finally:
                evo.cleanup()

            evo = Evo(data_dir=d)  # graceful restart: 1 still active, 2 still listed
            try:
                body = evo.get("/v1/spam/models").json()
                self.assertEqual(body["activeVersion"], 1)
                self.assertEqual([m["version"] for m in body["models"]], [1, 2])
                self.assertEqual(self.version_of_answers(evo), 1)
                self.assertEqual(evo.post("/v1/spam/models/2:activate").status_code, 200)
                evo.kill()
            finally:
                evo.cleanup()

            evo = Evo(data_dir=d)  # after kill -9 the activation of 2 is still there
            try:
                self.assertEqual(evo.get("/v1/spam/models").json()["activeVersion"], 2)
                self.assertEqual(self.version_of_answers(evo), 2)
                # Versions keep counting up after a restart.
                v3 = train(evo, messages=inline_messages(), activate=True)
                self.assertEqual(v3["version"], 3)
                self.assertEqual(self.version_of_answers(evo), 3)
            finally:
                evo.cleanup()

    def test_cli_changes_are_refused_beside_a_running_server(self):
        with tempfile.TemporaryDirectory() as d, Evo(data_dir=d) as evo:
            train(evo, directory=self.subset)
            train(evo, directory=self.other)
            self.assertEqual(self.version_of_answers(evo), 1)
            # The server owns the data dir: the CLI may read it, not change it.
            for argv in (["activate", "2"], ["train", self.subset]):
                p = subprocess.run([EVO, "spam"] + argv + ["--data-dir", d],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("data dir %s is in use by pid %d" % (d, evo.proc.pid), p.stderr)
            p = subprocess.run([EVO, "spam", "models", "--data-dir", d],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(len(evo.get("/v1/spam/models").json()["models"]), 2)
            self.assertEqual(self.version_of_answers(evo), 1)

    def test_inline_training(self):
        with Evo() as evo:
            m = train(evo, messages=inline_messages(), family="nb")
            self.assertEqual(m["version"], 1)
            self.assertEqual(m["family"], "nb")
            self.assertEqual((m["messages"], m["spam"], m["ham"]), (16, 8, 8))
            self.assertTrue(m["active"])
            spam = classify(evo, "cheap pills, click here for the offer")
            self.assertEqual(spam["label"], "spam")
            ham = classify(evo, "the gas nomination meeting is on Tuesday")
            self.assertEqual(ham["label"], "ham")
            # A subject given separately is part of the message.
            msgs = [dict(m, subject="hello") for m in inline_messages()]
            self.assertEqual(train(evo, messages=msgs)["version"], 2)
            # activate: true makes the new version the active one at once.
            self.assertTrue(train(evo, messages=inline_messages(), activate=True)["active"])
            self.assertEqual(evo.get("/v1/spam/models").json()["activeVersion"], 3)


class Feedback(Corpus, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()

    @classmethod
    def tearDownClass(cls):
        cls.tearDownCorpus()

    def feedback(self, evo, text, label, unlearn=None, expect=200):
        body = {"text": text, "label": label}
        if unlearn is not None:
            body["unlearn"] = unlearn
        r = evo.post("/v1/spam/feedback", json=body)
        self.assertEqual(r.status_code, expect, r.text)
        return r

    def test_learn_unlearn_and_replay_after_kill_9(self):
        text = read(self.ham_file)
        with tempfile.TemporaryDirectory() as d:
            evo = Evo(data_dir=d)
            try:
                self.assertEqual(train(evo, directory=self.subset, family="nb")["family"], "nb")
                before = classify(evo, text)["probability"]
                r = self.feedback(evo, text, "spam")
                self.assertEqual(r.json(), {"modelVersion": 1, "label": "spam", "unlearn": False})
                learned = classify(evo, text)["probability"]
                self.assertGreater(learned, before)

                r = self.feedback(evo, text, "spam", unlearn=True)
                self.assertTrue(r.json()["unlearn"])
                self.assertEqual(classify(evo, text)["probability"], before)  # exactly

                self.feedback(evo, text, "spam")  # learned again, and left learned
                self.assertEqual(classify(evo, text)["probability"], learned)
                self.assertEqual(evo.get("/v1/spam/models/1").json()["feedback"], 3)
                metrics = evo.get("/metrics").text
                self.assertIn('evo_spam_feedback_total{kind="learn"} 2', metrics)
                self.assertIn('evo_spam_feedback_total{kind="unlearn"} 1', metrics)
                evo.kill()
            finally:
                evo.cleanup()

            evo = Evo(data_dir=d)  # the feedback is replayed from the store
            try:
                self.assertEqual(classify(evo, text)["probability"], learned)
                self.assertEqual(evo.get("/v1/spam/models/1").json()["feedback"], 3)
                # It can still be taken back after the restart.
                self.feedback(evo, text, "spam", unlearn=True)
                self.assertEqual(classify(evo, text)["probability"], before)
            finally:
                evo.cleanup()

    def test_learned_tokens_are_explained_as_valid_utf8(self):
        # Feedback teaches the model tokens it never saw, long enough to be cut inside a
        # multi-byte character: the explanation must still be valid UTF-8 JSON.
        with Evo() as evo:
            train(evo, directory=self.subset, family="nb")
            for text in ["\u00e9" * 101 + " offer", "\u65e5\u672c\u8a9e" * 50 + " offer",
                         "\U0001F600" * 40, "<script>alert(1)</script> \"quoted\" \\ back"]:
                self.feedback(evo, text, "spam")
                r = evo.post("/v1/spam/classify", json={"text": text})
                self.assertEqual(r.status_code, 200, r.text)
                r.content.decode("utf-8")  # strict
                c = json.loads(r.content)
                self.assertTrue(c["topTokens"], text[:20])
                for t in c["topTokens"]:
                    self.assertIsInstance(t["token"], str)

    def test_unlearning_what_was_never_learned_is_rejected(self):
        with Evo() as evo:
            train(evo, directory=self.subset, family="nb")
            text = "zqxvbnm plokmijn qazwsxedc never seen before"
            before = classify(evo, text)["probability"]
            r = self.feedback(evo, text, "ham", unlearn=True, expect=400)
            self.assertTrue(is_problem(r), r.text)
            self.assertEqual(r.json()["reason"], "NOT_LEARNED")
            self.assertEqual(classify(evo, text)["probability"], before)  # nothing changed
            self.assertEqual(evo.get("/v1/spam/models/1").json()["feedback"], 0)
            self.assertEqual(evo.get("/livez").status_code, 200)

    def test_linear_model_is_not_incremental(self):
        with Evo() as evo:
            train(evo, directory=self.subset, family="linear")
            text = read(self.ham_file)
            before = classify(evo, text)["probability"]
            r = self.feedback(evo, text, "spam", expect=400)
            self.assertTrue(is_problem(r), r.text)
            self.assertEqual(r.json()["code"], "FAILED_PRECONDITION")
            self.assertEqual(r.json()["reason"], "MODEL_NOT_INCREMENTAL")
            self.assertEqual(classify(evo, text)["probability"], before)
            # Feedback goes to the active version: after activating an nb one it is accepted.
            train(evo, directory=self.subset, family="nb", activate=True)
            self.assertEqual(self.feedback(evo, text, "spam").json()["modelVersion"], 2)


class TrainingUnderLoad(Corpus, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()

    @classmethod
    def tearDownClass(cls):
        cls.tearDownCorpus()

    def test_classification_keeps_answering_during_full_corpus_training(self):
        with Evo(args=["--threads", "4"]) as evo:
            train(evo, directory=self.subset)
            text = read(self.spam_file)
            trained = {}
            training_done = threading.Event()

            def train_full():
                try:
                    trained["response"] = requests.post(
                        evo.url("/v1/spam/models"), json={"directory": ENRON, "activate": True},
                        timeout=300)
                finally:
                    training_done.set()

            # Per loader: (status, modelVersion, had the training answered before the request?)
            answers = [[], []]
            errors = []

            def load(mine):
                s = requests.Session()
                while True:
                    done_before = training_done.is_set()
                    try:
                        r = s.post(evo.url("/v1/spam/classify"), json={"text": text}, timeout=30)
                    except requests.RequestException as e:
                        errors.append(repr(e))
                        return
                    mine.append((r.status_code, r.json().get("modelVersion"), done_before))
                    if done_before:
                        return

            loaders = [threading.Thread(target=load, args=(a,)) for a in answers]
            for t in loaders:
                t.start()
            trainer = threading.Thread(target=train_full)
            trainer.start()
            trainer.join(300)
            for t in loaders:
                t.join(60)

            self.assertEqual(errors, [])
            r = trained["response"]
            self.assertEqual(r.status_code, 201, r.text)
            full = r.json()
            self.assertEqual(full["version"], 2)
            self.assertTrue(full["active"])
            # Enron1 has 3672 ham and 1500 spam files, all trained on (one spam file holds a
            # NUL byte: data, like any other byte).
            self.assertEqual((full["ham"], full["spam"]), (3672, 1500))
            self.assertNotIn("skipped", full["metrics"])

            everything = answers[0] + answers[1]
            self.assertTrue(all(status == 200 for status, _, _ in everything), everything)
            # Requests sent while the training ran were all answered, by version 1 (or by 2
            # once it was swapped in at the end), never by anything else...
            during = [v for _, v, done in everything if not done]
            self.assertGreater(len(during), 0)
            self.assertIn(1, during)
            self.assertLessEqual(set(during), {1, 2})
            # ...and the swap is atomic: once a client has seen version 2, never 1 again.
            for mine in answers:
                versions = [v for _, v, _ in mine]
                self.assertEqual(versions, sorted(versions))
            # Every request sent after the training answered is served by the new version.
            after = [v for _, v, done in everything if done]
            self.assertEqual(after, [2, 2])
            self.assertEqual(classify(evo, text)["modelVersion"], 2)
            self.assertEqual(classify(evo, text)["label"], "spam")


class BadInput(Corpus, unittest.TestCase):
    """Every case ends with /livez answering 200 and a valid classification succeeding."""

    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()
        cls.evo = Evo()
        train(cls.evo, directory=cls.subset)
        cls.valid = read(cls.spam_file)

    @classmethod
    def tearDownClass(cls):
        cls.evo.cleanup()
        cls.tearDownCorpus()

    def tearDown(self):
        self.assertEqual(self.evo.get("/livez").status_code, 200)
        self.assertEqual(classify(self.evo, self.valid)["modelVersion"], 1)

    def post(self, path, body, headers=JSON):
        data = body if isinstance(body, bytes) else None
        js = None if isinstance(body, bytes) else body
        return self.evo.post(path, data=data, json=js,
                             headers=headers if data is not None else None)

    def assert_problem(self, r, status, reason=None, pointer=None):
        self.assertEqual(r.status_code, status, r.text)
        self.assertTrue(is_problem(r), r.text)
        body = r.json()
        if reason is not None:
            self.assertEqual(body.get("reason"), reason, r.text)
        if pointer is not None:
            self.assertIn(pointer, [e.get("pointer") for e in body.get("errors", [])], r.text)
        return body

    def test_no_model_yet(self):
        with Evo() as evo:
            for path, body in [("/v1/spam/classify", {"text": "hello"}),
                               ("/v1/spam/classify:batch", {"messages": [{"text": "hello"}]}),
                               ("/v1/spam/feedback", {"text": "hello", "label": "ham"})]:
                r = evo.post(path, json=body)
                self.assert_problem(r, 400, "NO_MODEL")
                self.assertIn("train", r.json()["detail"])
            body = evo.get("/v1/spam/models").json()
            self.assertEqual(body, {"models": [], "activeVersion": 0})
            self.assertEqual(evo.get("/livez").status_code, 200)
            train(evo, directory=self.subset)
            self.assertEqual(classify(evo, self.valid)["modelVersion"], 1)

    def test_empty_and_white_space_text(self):
        for text in ["", "   ", " \n\t\r\n "]:
            r = self.post("/v1/spam/classify", {"text": text})
            self.assert_problem(r, 400, "EMPTY_TEXT", "#/text")
        # In a batch, the blank item gets its own problem; the others are classified.
        r = self.post("/v1/spam/classify:batch",
                      {"messages": [{"text": "ok"}, {"text": " "}, {"text": self.valid}]})
        self.assertEqual(r.status_code, 200, r.text)
        results = r.json()["results"]
        self.assertEqual(len(results), 3)
        self.assertIn(results[0]["label"], ("spam", "ham"))
        self.assertEqual(results[2], classify(self.evo, self.valid))
        self.assert_item_problem(results[1], "EMPTY_TEXT", "#/messages/1/text")

    def assert_item_problem(self, item, reason, pointer):
        self.assertEqual(set(item), {"error"}, item)
        problem = item["error"]
        self.assertEqual(problem["status"], 400, problem)
        self.assertEqual(problem["code"], "INVALID_ARGUMENT", problem)
        self.assertEqual(problem["reason"], reason, problem)
        self.assertTrue(problem["detail"], problem)
        self.assertIn(pointer, [e.get("pointer") for e in problem.get("errors", [])], problem)

    def test_nul_bytes_and_control_characters_are_classified(self):
        # A spam filter classifies what arrives: control characters, NUL (\u0000) included.
        texts = ["\x01\x02\x03\x04\x05\x06\x07\x08 hi", "\x1b" * 50 + "hello world",
                 "binary\u0000garbage", "\u0000", self.valid.replace("\n", "\u0000\n", 3)]
        for text in texts:
            c = classify(self.evo, text)
            self.assertIn(c["label"], ("spam", "ham"))
            self.assertEqual(c["modelVersion"], 1)
        c = classify(self.evo, "buy now", subject="cheap\u0000pills")
        self.assertIn(c["label"], ("spam", "ham"))
        # One such message no longer sinks its batch: all 500 are answered.
        batch = [{"text": self.held_out_ham[i % 10]} for i in range(499)]
        batch.insert(250, {"text": "spam\u0000with a NUL"})
        r = self.post("/v1/spam/classify:batch", {"messages": batch})
        self.assertEqual(r.status_code, 200, r.text)
        results = r.json()["results"]
        self.assertEqual(len(results), 500)
        self.assertTrue(all("label" in res for res in results), results)
        self.assertEqual(results[0], classify(self.evo, self.held_out_ham[0]))
        # Feedback reaches the model check (this model is linear), not a text refusal.
        r = self.post("/v1/spam/feedback", {"text": "a\u0000b", "label": "spam"})
        self.assert_problem(r, 400, "MODEL_NOT_INCREMENTAL")
        # A NUL in a field name is valid JSON too: an unknown field, ignored like any other.
        r = self.post("/v1/spam/classify", b'{"text": "a", "b\\u0000": 1}')
        self.assertEqual(r.status_code, 200, r.text)

    def test_batch_request_errors_stay_request_level(self):
        for body, pointer in [({"messages": [{"text": "ok"}, "not an object"]}, "#/messages/1"),
                              ({"messages": [{"text": "ok"}, {"text": 5}]}, "#/messages/1/text"),
                              ({"messages": [{"subject": "no text"}]}, "#/messages/0/text"),
                              ({"messages": "a"}, "#/messages"), ({}, "#/messages"),
                              ({"messages": []}, "#/messages")]:
            with self.subTest(body=body):
                self.assert_problem(self.post("/v1/spam/classify:batch", body), 400,
                                    pointer=pointer)

    def test_invalid_utf8_and_malformed_json(self):
        for raw in [b'{"text": "\xff\xfe hello"}', b'{"text": "\xc0\xaf"}',
                    b'{"text": "\\ud800 lone surrogate"}', b'{"text": "a",', b'{text: 1}',
                    b'{"text": "a"}x', b'{"text": "a", "text": "b"}', b'[' * 100000, b'']:
            r = self.post("/v1/spam/classify", raw)
            self.assert_problem(r, 400)
            self.assertEqual(r.json()["code"], "INVALID_ARGUMENT")
        for raw in [b'[]', b'"text"', b'null', b'42']:
            r = self.post("/v1/spam/classify", raw)
            self.assert_problem(r, 400)

    def test_ten_mib_body_is_413(self):
        r = self.post("/v1/spam/classify", b'{"text": "' + b"a" * (10 << 20) + b'"}')
        self.assert_problem(r, 413)
        # The text limit also holds inside the larger batch body.
        r = self.post("/v1/spam/classify:batch",
                      {"messages": [{"text": "word " * ((1 << 20) // 5 + 10)}, {"text": "hi"}]})
        self.assertEqual(r.status_code, 200, r.text)
        results = r.json()["results"]
        self.assert_item_problem(results[0], "TEXT_TOO_LARGE", "#/messages/0/text")
        self.assertIn("label", results[1])
        # Oversize Content-Length with Expect: 100-continue is refused before the body, at each
        # route's own limit (1 MiB classify, 32 MiB batch, 64 MiB training).
        for path, length in [("/v1/spam/classify", (1 << 20) + 1),
                             ("/v1/spam/classify:batch", (32 << 20) + 1),
                             ("/v1/spam/models", (64 << 20) + 1)]:
            raw = raw_request(self.evo.port, (
                "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (path, length)).encode(),
                read_all=False)
            self.assertEqual(status_of(raw), 413, (path, raw[:200]))

    def test_wrong_field_types_name_the_field(self):
        cases = [
            ("/v1/spam/classify", {"text": 5}, "#/text"),
            ("/v1/spam/classify", {"text": ["a"]}, "#/text"),
            ("/v1/spam/classify", {"text": {"$gt": ""}}, "#/text"),
            ("/v1/spam/classify", {"subject": "x"}, "#/text"),
            ("/v1/spam/classify", {"text": "hi", "subject": 3}, "#/subject"),
            ("/v1/spam/classify:batch", {"messages": "x"}, "#/messages"),
            ("/v1/spam/classify:batch", {"messages": []}, "#/messages"),
            ("/v1/spam/classify:batch", {"messages": [{"text": "a"}, 5]}, "#/messages/1"),
            ("/v1/spam/classify:batch", {"messages": [{"text": True}]}, "#/messages/0/text"),
            ("/v1/spam/feedback", {"text": "hi", "label": "maybe"}, "#/label"),
            ("/v1/spam/feedback", {"text": "hi"}, "#/label"),
            ("/v1/spam/feedback", {"text": "hi", "label": "spam", "unlearn": "yes"}, "#/unlearn"),
            ("/v1/spam/models", {"directory": self.subset, "activate": "yes"}, "#/activate"),
            ("/v1/spam/models", {"directory": self.subset, "family": "svm2"}, "#/family"),
            ("/v1/spam/models", {"directory": self.subset, "family": 1}, "#/family"),
            ("/v1/spam/models", {"directory": 5}, "#/directory"),
            # A path is an identifier: a NUL would cut it short at the file system.
            ("/v1/spam/models", {"directory": self.subset + "\u0000/../x"}, "#/directory"),
            ("/v1/spam/models", {"messages": "x"}, "#/messages"),
            ("/v1/spam/models", {"messages": [{"text": "a", "label": "maybe"}]},
             "#/messages/0/label"),
            ("/v1/spam/models", {"messages": [{"text": 1, "label": "spam"}]}, "#/messages/0/text"),
            ("/v1/spam/models", {"messages": [7]}, "#/messages/0"),
            ("/v1/spam/models", {}, "#"),
            ("/v1/spam/models", {"directory": self.subset, "messages": inline_messages()}, "#"),
        ]
        models = len(self.evo.get("/v1/spam/models").json()["models"])
        for path, body, pointer in cases:
            with self.subTest(path=path, body=str(body)[:60]):
                r = self.post(path, body)
                self.assert_problem(r, 400, pointer=pointer)
                self.assertEqual(r.json()["code"], "INVALID_ARGUMENT")
        # None of them trained anything.
        self.assertEqual(len(self.evo.get("/v1/spam/models").json()["models"]), models)

    def test_unknown_and_output_only_fields_are_ignored(self):
        # Documented: unknown fields are ignored; output-only ones are never honoured.
        r = self.post("/v1/spam/models", {"directory": self.subset, "version": 42, "active": True,
                                          "createdAt": "2000-01-01T00:00:00Z", "feedback": 7,
                                          "isAdmin": True})
        self.assertEqual(r.status_code, 201, r.text)
        m = r.json()
        self.assertNotEqual(m["version"], 42)
        self.assertFalse(m["active"])
        self.assertEqual(m["feedback"], 0)
        self.assertFalse(m["createdAt"].startswith("2000"))
        self.assertEqual(self.evo.get("/v1/spam/models").json()["activeVersion"], 1)
        r = self.post("/v1/spam/classify", {"text": "hello there", "modelVersion": m["version"],
                                            "label": "ham"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["modelVersion"], 1)

    def test_wrong_content_type_is_415(self):
        for ctype in ["text/plain", "application/x-www-form-urlencoded",
                      "application/json; charset=latin1", None]:
            headers = {"Content-Type": ctype} if ctype else {}
            r = self.evo.post("/v1/spam/classify", data=b'{"text": "hello"}', headers=headers)
            self.assert_problem(r, 415)
            self.assertIn("application/json", r.headers.get("Accept-Post", ""))

    def test_batch_of_1001_is_400(self):
        r = self.post("/v1/spam/classify:batch", {"messages": [{"text": "hi"}] * 1001})
        self.assert_problem(r, 400, pointer="#/messages")
        r = self.post("/v1/spam/classify:batch", {"messages": [{"text": "hi"}] * 1000})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(len(r.json()["results"]), 1000)

    def test_versions_in_the_path(self):
        for path in ["/v1/spam/models/99", "/v1/spam/models/99:activate"]:
            method = self.evo.post if path.endswith(":activate") else self.evo.get
            self.assert_problem(method(path), 404, "UNKNOWN_VERSION")
        for bad in ["abc", "0", "-1", "1.5", "01x", "99999999999999999999", "%FF", "1%00"]:
            for path in ["/v1/spam/models/" + bad, "/v1/spam/models/%s:activate" % bad]:
                method = self.evo.post if path.endswith(":activate") else self.evo.get
                r = method(path)
                self.assert_problem(r, 400)
        self.assertEqual(self.evo.get("/v1/spam/models").json()["activeVersion"], 1)

    def test_bad_training_directories(self):
        models = len(self.evo.get("/v1/spam/models").json()["models"])
        with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as one_class:
            make_subset(one_class, ham=20, spam=0)
            cases = [("relative/path", 400), ("", 400), ("/nonexistent/evo-e2e", 404),
                     (empty, 404), (os.path.join(self.subset, "ham"), 404),
                     (os.path.join(self.subset, "ham", os.listdir(
                         os.path.join(self.subset, "ham"))[0]), 404),
                     (one_class, 400)]
            for directory, status in cases:
                with self.subTest(directory=directory):
                    r = self.post("/v1/spam/models", {"directory": directory})
                    self.assert_problem(r, status)
                    if status == 404 or directory in ("relative/path", ""):
                        self.assertIn("#/directory",
                                      [e.get("pointer") for e in r.json().get("errors", [])])
            r = self.post("/v1/spam/models", {"directory": one_class})
            self.assertEqual(r.json()["reason"], "TOO_FEW_MESSAGES")
        # One class inline, and an inline message that is not text.
        r = self.post("/v1/spam/models", {"messages": [{"text": "buy now", "label": "spam"}] * 10})
        self.assert_problem(r, 400, "TOO_FEW_MESSAGES")
        bad = inline_messages()
        bad[3] = {"text": " \n ", "label": "spam"}
        r = self.post("/v1/spam/models", {"messages": bad})
        self.assert_problem(r, 400, "EMPTY_TEXT", "#/messages/3/text")
        self.assertEqual(len(self.evo.get("/v1/spam/models").json()["models"]), models)

    def test_wrong_methods(self):
        r = self.evo.session.delete(self.evo.url("/v1/spam/models/1"))
        self.assertEqual(r.status_code, 405)
        r = self.evo.get("/v1/spam/classify")
        self.assertEqual(r.status_code, 405)
        self.assertIn("POST", r.headers.get("Allow", ""))


class Cli(Corpus, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()

    @classmethod
    def tearDownClass(cls):
        cls.tearDownCorpus()

    def run_evo(self, *args, stdin=None):
        return subprocess.run([EVO] + list(args), capture_output=True, text=True, timeout=120,
                              input=stdin)

    def test_train_models_classify_activate(self):
        with tempfile.TemporaryDirectory() as d:
            p = self.run_evo("spam", "classify", self.spam_file, "--data-dir", d)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("train", p.stderr)

            p = self.run_evo("spam", "models", "--data-dir", d)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("no spam models yet", p.stdout)

            p = self.run_evo("spam", "train", self.subset, "--data-dir", d)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("model version 1", p.stdout)
            self.assertIn("active", p.stdout)
            p = self.run_evo("spam", "train", self.subset, "--data-dir", d, "--format", "json")
            self.assertEqual(p.returncode, 0, p.stderr)
            v2 = json.loads(p.stdout)
            self.assertEqual((v2["version"], v2["active"]), (2, False))

            p = self.run_evo("spam", "models", "--data-dir", d)
            self.assertEqual(p.returncode, 0, p.stderr)
            rows = [line.split() for line in p.stdout.strip().split("\n")[1:]]
            self.assertEqual([r[0] for r in rows], ["1", "2"])
            self.assertEqual(rows[0][1], "*")
            self.assertNotEqual(rows[1][1], "*")

            p = self.run_evo("spam", "classify", self.spam_file, self.ham_file, "--data-dir", d)
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.strip().split("\n")
            self.assertEqual(len(lines), 2)
            for line, path, label in zip(lines, (self.spam_file, self.ham_file), ("spam", "ham")):
                fields = line.split("\t")
                self.assertEqual(fields[0], path)
                self.assertEqual(fields[1], label)
                self.assertTrue(0 <= float(fields[2]) <= 1)
            p = self.run_evo("spam", "classify", "-", "--format", "json", "--data-dir", d,
                             stdin=read(self.ham_file))
            self.assertEqual(p.returncode, 0, p.stderr)
            j = json.loads(p.stdout)
            self.assertEqual((j["label"], j["modelVersion"]), ("ham", 1))

            p = self.run_evo("spam", "activate", "2", "--data-dir", d)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("2 is active", p.stdout)
            p = self.run_evo("spam", "models", "--format", "json", "--data-dir", d)
            self.assertEqual([m["active"] for m in json.loads(p.stdout)], [False, True])

            # A server on the same data dir picks up what the CLI trained and activated.
            with Evo(data_dir=d) as evo:
                self.assertEqual(classify(evo, read(self.spam_file))["modelVersion"], 2)

    def test_cli_errors(self):
        with tempfile.TemporaryDirectory() as d:
            p = self.run_evo("spam", "train", self.subset, "--data-dir", d)
            self.assertEqual(p.returncode, 0, p.stderr)
            missing = os.path.join(d, "no-such-message.eml")
            p = self.run_evo("spam", "classify", missing, "--data-dir", d)
            self.assertEqual(p.returncode, 2)
            self.assertIn(missing, p.stderr)
            self.assertIn("no such file", p.stderr)
            # A directory and an empty file: reported, the others classified, a binary file
            # (NUL bytes and all) included.
            empty = os.path.join(d, "empty.eml")
            open(empty, "w").close()
            binary = os.path.join(d, "binary.bin")
            with open(binary, "wb") as f:
                f.write(bytes(range(256)) * 4)
            p = self.run_evo("spam", "classify", d, empty, binary, self.ham_file, "--data-dir", d)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("not a regular file", p.stderr)
            self.assertIn("text is empty", p.stderr)
            lines = p.stdout.splitlines()
            self.assertEqual(len(lines), 2, p.stdout)
            self.assertTrue(lines[0].startswith(binary + "\t"), p.stdout)
            self.assertTrue(lines[1].startswith(self.ham_file + "\tham\t"), p.stdout)

            p = self.run_evo("spam", "activate", "99", "--data-dir", d)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("no spam model version 99", p.stderr)
            for bad in ("0", "-1", "abc"):
                p = self.run_evo("spam", "activate", bad, "--data-dir", d)
                self.assertNotEqual(p.returncode, 0, bad)
                self.assertIn(bad, p.stderr)

            p = self.run_evo("spam", "train", "/nonexistent/evo-corpus", "--data-dir", d)
            self.assertEqual(p.returncode, 2)
            self.assertIn("/nonexistent/evo-corpus", p.stderr)
            p = self.run_evo("spam", "train", d, "--data-dir", d)  # neither ham/ nor spam/
            self.assertEqual(p.returncode, 2)
            self.assertIn("neither ham/ nor spam/", p.stderr)

    def test_eval(self):
        p = self.run_evo("spam", "eval", self.subset, "--format", "json", "--folds", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        e = json.loads(p.stdout)
        self.assertIn("test", e)
        self.assertIn("cv", e)
        self.assertEqual(len(e["cv"]["fold_accuracy"]), 2)
        self.assertTrue(0 <= e["test"]["accuracy"] <= 1)
        p = self.run_evo("spam", "eval", self.subset, "--folds", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2-fold CV", p.stdout)

        p = self.run_evo("spam", "eval", "/nonexistent/evo-corpus")
        self.assertEqual(p.returncode, 2)
        self.assertIn("/nonexistent/evo-corpus", p.stderr)
        self.assertIn("not a directory", p.stderr)
        p = self.run_evo("spam", "eval", self.subset, "--folds", "1")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--folds", p.stderr)


class Observability(Corpus, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()
        cls.evo = Evo()

    @classmethod
    def tearDownClass(cls):
        cls.evo.cleanup()
        cls.tearDownCorpus()

    def test_openapi_lists_the_spam_routes(self):
        doc = self.evo.get("/openapi.json").json()
        for path, method in [("/v1/spam/classify", "post"), ("/v1/spam/classify:batch", "post"),
                             ("/v1/spam/feedback", "post"), ("/v1/spam/models", "post"),
                             ("/v1/spam/models", "get"), ("/v1/spam/models/{version}", "get"),
                             ("/v1/spam/models/{version}:activate", "post")]:
            self.assertIn(path, doc["paths"])
            self.assertIn(method, doc["paths"][path])
        classify_op = doc["paths"]["/v1/spam/classify"]["post"]
        self.assertIn("200", classify_op["responses"])
        self.assertIn("400", classify_op["responses"])

    def test_metrics_count_classifications(self):
        train(self.evo, directory=self.subset)
        self.assertIn("evo_spam_active_model_version 1", self.evo.get("/metrics").text)
        classify(self.evo, read(self.spam_file))
        classify(self.evo, read(self.ham_file))
        r = self.evo.post("/v1/spam/classify:batch",
                          json={"messages": [{"text": read(self.spam_file)}] * 3})
        self.assertEqual(r.status_code, 200)
        text = self.evo.get("/metrics").text
        self.assertIn("evo_spam_classified_total", text)
        from prometheus_client.parser import text_string_to_metric_families
        counts = {}
        for family in text_string_to_metric_families(text):
            if family.name == "evo_spam_classified":
                for s in family.samples:
                    if s.name == "evo_spam_classified_total":
                        counts[s.labels["label"]] = s.value
        self.assertEqual(counts, {"spam": 4, "ham": 1})


class CorpusRoot(Corpus, unittest.TestCase):
    """Directory training reads only below --spam-corpus-root, never through a symbolic link,
    and its answers do not tell whether a path outside the root exists (review 2026-12, D7)."""

    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()
        base = cls._tmp.name
        cls.root = os.path.join(base, "root")
        cls.inside = make_subset(os.path.join(cls.root, "inside"))
        cls.outside = os.path.join(base, "outside")
        os.makedirs(cls.outside)
        cls.secret = os.path.join(cls.outside, "secret.txt")
        with open(cls.secret, "w") as f:
            f.write("Subject: hi\n\nSECRETTOKENXYZ hunter2 " * 20)
        # A corpus inside the root whose files and directories point outside it.
        cls.linked = os.path.join(cls.root, "linked")
        os.makedirs(os.path.join(cls.linked, "spam"))
        os.symlink(os.path.join(cls.inside, "ham"), os.path.join(cls.linked, "ham"))
        spam_dir = os.path.join(cls.inside, "spam")
        for name in sorted(os.listdir(spam_dir))[:60]:
            shutil.copy(os.path.join(spam_dir, name), os.path.join(cls.linked, "spam"))
        for i in range(40):
            os.symlink(cls.secret, os.path.join(cls.linked, "spam", "leak%02d" % i))
        os.symlink(cls.outside, os.path.join(cls.root, "escape"))
        cls.evo = harness.Evo(args=["--spam-corpus-root", cls.root])
        cls.off = harness.Evo()

    @classmethod
    def tearDownClass(cls):
        cls.evo.cleanup()
        cls.off.cleanup()
        cls.tearDownCorpus()

    def post(self, evo, directory):
        return evo.post("/v1/spam/models", json={"directory": directory}, timeout=120)

    def test_directory_below_the_root_trains(self):
        r = self.post(self.evo, self.inside)
        self.assertEqual(r.status_code, 201, r.text)
        self.assertEqual(r.json()["messages"], 250)
        # The same directory spelled with "..", staying inside, is the same directory.
        r = self.post(self.evo, os.path.join(self.root, "linked", "..", "inside"))
        self.assertEqual(r.status_code, 201, r.text)

    def test_without_a_root_directory_training_is_off(self):
        r = self.post(self.off, self.inside)
        self.assertEqual(r.status_code, 403, r.text)
        self.assertTrue(is_problem(r), r.text)
        self.assertEqual(r.json()["reason"], "DIRECTORY_TRAINING_OFF")
        # Inline messages still train.
        r = self.off.post("/v1/spam/models", json={"messages": inline_messages()})
        self.assertEqual(r.status_code, 201, r.text)

    def test_outside_the_root_is_403_whether_it_exists_or_not(self):
        answers = []
        for directory in ["/etc", "/nonexistent/evo-e2e", self.outside, "/root",
                          os.path.join(self.root, "..", "outside"), self.root + "-sibling"]:
            with self.subTest(directory=directory):
                r = self.post(self.evo, directory)
                self.assertEqual(r.status_code, 403, r.text)
                self.assertTrue(is_problem(r), r.text)
                self.assertEqual(r.json()["reason"], "OUTSIDE_CORPUS_ROOT")
                answers.append(r.json()["detail"])
        self.assertEqual(len(set(answers)), 1, answers)  # nothing about the path itself

    def test_symbolic_links_are_not_followed(self):
        # A link out of the root is the same 404 as a directory that does not exist.
        for directory in [os.path.join(self.root, "escape"), os.path.join(self.root, "missing")]:
            with self.subTest(directory=directory):
                r = self.post(self.evo, directory)
                self.assertEqual(r.status_code, 404, r.text)
                self.assertTrue(is_problem(r), r.text)
                self.assertEqual(r.json()["reason"], "CORPUS_NOT_FOUND")
        # A linked ham/ counts as missing and linked files are skipped: only the 60 copied
        # spam files are read, so there is too little to train on, and nothing of the
        # secret reached a model.
        r = self.post(self.evo, self.linked)
        self.assertEqual(r.status_code, 400, r.text)
        self.assertTrue(is_problem(r), r.text)
        self.assertEqual(r.json()["reason"], "TOO_FEW_MESSAGES")
        self.assertNotIn("hunter2", r.text)


class TrainingOffTheIoThreads(Corpus, unittest.TestCase):
    """Training runs on the blocking threads: with a single I/O thread, /livez keeps answering
    while two full-corpus trainings run (review 2026-12, security D3)."""

    @classmethod
    def setUpClass(cls):
        cls.setUpCorpus()

    @classmethod
    def tearDownClass(cls):
        cls.tearDownCorpus()

    def test_livez_answers_during_two_trainings(self):
        with Evo(args=["--threads", "1"]) as evo:
            done = []

            def train_full():
                r = requests.post(evo.url("/v1/spam/models"), json={"directory": ENRON},
                                  timeout=600)
                done.append(r.status_code)

            trainers = [threading.Thread(target=train_full) for _ in range(2)]
            for t in trainers:
                t.start()
            probes, failures = 0, []
            while len(done) < 2:
                try:
                    r = requests.get(evo.url("/livez"), timeout=2)
                    probes += 1
                    if r.status_code != 200:
                        failures.append(r.status_code)
                except requests.RequestException as e:
                    failures.append(repr(e))
                time.sleep(0.05)
            for t in trainers:
                t.join()
            self.assertEqual(done, [201, 201])
            self.assertEqual(failures, [])
            self.assertGreater(probes, 5)  # the trainings took long enough to probe


def is_test_file(basename):
    """The fixed split of `evo spam eval`: test when sha256(basename)[:8] mod 10 < 3."""
    return int(hashlib.sha256(basename.encode()).hexdigest()[:8], 16) % 10 < 3


def read_latin1(path):
    """A file as a JSON client sends it: its bytes decoded as Latin-1 (any byte is valid)."""
    with open(path, "rb") as f:
        return f.read().decode("latin-1")


class SameVerdictHoweverItArrives(unittest.TestCase):
    """The Enron1 test split sent through the HTTP API as a JSON client sends files of unknown
    charset (bytes decoded as Latin-1) gets exactly the verdicts the raw bytes get: from
    `evo spam classify` on the files, and in `evo spam eval`'s recalls, with a model trained
    on the training split either from the server-side directory (raw bytes) or inline as
    Latin-1-decoded JSON text. The corpus's 15 files with 8-bit bytes are windows-1252; one
    holds a NUL byte."""

    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(ENRON, "ham")):
            raise RuntimeError("Enron1 corpus not unpacked at %s (ninja enron_corpus)" % ENRON)
        cls._tmp = tempfile.TemporaryDirectory(prefix="evo-e2e-spam-split-")
        cls.train_dir = os.path.join(cls._tmp.name, "train")
        cls.train_files, cls.test_files = [], []  # (path, is spam), in name order per label
        for label in ("ham", "spam"):
            os.makedirs(os.path.join(cls.train_dir, label))
            for path in corpus_files(label):
                if is_test_file(os.path.basename(path)):
                    cls.test_files.append((path, label == "spam"))
                else:
                    cls.train_files.append((path, label == "spam"))
                    shutil.copy(path, os.path.join(cls.train_dir, label))
        cls.data_dir = os.path.join(cls._tmp.name, "data")
        cls.evo = Evo(data_dir=cls.data_dir)

    @classmethod
    def tearDownClass(cls):
        cls.evo.cleanup()
        cls._tmp.cleanup()

    def classify_test_split(self):
        """Labels and probabilities of the test split through :batch, as Latin-1 JSON text."""
        answers = []
        for start in range(0, len(self.test_files), 500):
            chunk = self.test_files[start:start + 500]
            r = self.evo.post("/v1/spam/classify:batch", timeout=120,
                              json={"messages": [{"text": read_latin1(p)} for p, _ in chunk]})
            self.assertEqual(r.status_code, 200, r.text[:500])
            results = r.json()["results"]
            self.assertEqual(len(results), len(chunk))
            for res in results:
                self.assertIn("label", res, res)  # every message classified, NUL byte or not
                answers.append((res["label"] == "spam", res["probability"]))
        return answers

    def recalls(self, labels):
        spam = [predicted for predicted, (_, truth) in zip(labels, self.test_files) if truth]
        ham = [not predicted for predicted, (_, truth) in zip(labels, self.test_files)
               if not truth]
        return sum(spam) / len(spam), sum(ham) / len(ham)

    def test_json_latin1_text_scores_what_the_raw_bytes_score(self):
        self.assertEqual(len(self.test_files), 1601)
        # The model trained on the training split's files, read raw by the server.
        model = train(self.evo, directory=self.train_dir)
        self.assertEqual(model["messages"], len(self.train_files))
        self.assertNotIn("skipped", model["metrics"])
        answers = self.classify_test_split()
        labels = [spam for spam, _ in answers]

        # The raw bytes of the same files through the CLI, with the same model.
        p = subprocess.run([EVO, "spam", "classify", "--format", "json", "--data-dir",
                            self.data_dir] + [path for path, _ in self.test_files],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr[:2000])
        raw = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual([r["file"] for r in raw], [path for path, _ in self.test_files])
        differ = [(path, r["label"], a) for (path, _), r, a in zip(self.test_files, raw, labels)
                  if (r["label"] == "spam") != a]
        self.assertEqual(differ, [])
        for (_, probability), r in zip(answers, raw):
            self.assertAlmostEqual(probability, r["probability"], places=4)

        # `evo spam eval` on the raw corpus: the same recalls, both at least 99.2 %.
        p = subprocess.run([EVO, "spam", "eval", ENRON, "--folds", "0", "--format", "json"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        test = json.loads(p.stdout)["test"]
        spam_recall, ham_recall = self.recalls(labels)
        self.assertAlmostEqual(spam_recall, test["spam_recall"], places=12)
        self.assertAlmostEqual(ham_recall, test["ham_recall"], places=12)
        self.assertGreaterEqual(spam_recall, 0.992)
        self.assertGreaterEqual(ham_recall, 0.992)

        # Trained inline from Latin-1 JSON text instead, the model answers exactly the same.
        inline = [{"text": read_latin1(path), "label": "spam" if spam else "ham"}
                  for path, spam in self.train_files]
        v2 = train(self.evo, messages=inline, activate=True)
        self.assertEqual(v2["messages"], model["messages"])
        self.assertEqual(v2["features"], model["features"])
        self.assertEqual(v2["threshold"], model["threshold"])
        self.assertEqual(self.classify_test_split(), answers)


if __name__ == "__main__":
    unittest.main()
