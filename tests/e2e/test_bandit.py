"""End-to-end tests of the bandit module: experiments, pulls, rewards, stats, durability.

The real binary on loopback, real HTTP clients, real kill -9. Nothing is mocked.
"""

import json
import os
import random
import tempfile
import threading
import time
import unittest

import requests

from harness import Evo, is_problem

JSON = {"Content-Type": "application/json"}


def create(evo, name="exp", arms=("a", "b", "c"), **extra):
    body = {"name": name, "arms": [{"name": a, "payload": {"color": a}} for a in arms]}
    body.update(extra)
    r = evo.post("/v1/experiments", json=body)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


def pull(evo, name="exp", unit=None):
    r = evo.post("/v1/experiments/%s/pulls" % name, json={"unitId": unit} if unit else {})
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def reward(evo, pull_id, value, name="exp"):
    return evo.post("/v1/experiments/%s/rewards" % name, json={"pullId": pull_id, "reward": value})


def stats(evo, name="exp"):
    r = evo.get("/v1/experiments/%s/stats" % name)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


class Basics(unittest.TestCase):
    def test_create_pull_reward_stats(self):
        with Evo() as evo:
            spec = create(evo)
            self.assertEqual(spec["policy"]["type"], "thompson")
            self.assertEqual(spec["rewardType"], "bernoulli")
            self.assertEqual(evo.get("/v1/experiments/exp").json()["name"], "exp")
            p = pull(evo)
            self.assertIn(p["arm"], ("a", "b", "c"))
            self.assertEqual(p["payload"], {"color": p["arm"]})
            r = reward(evo, p["pullId"], 1)
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(r.json()["arm"], p["arm"])
            s = stats(evo)
            arm = next(a for a in s["arms"] if a["name"] == p["arm"])
            self.assertEqual(arm["pulls"], 1)
            self.assertEqual(arm["rewardSum"], 1)
            self.assertEqual(len(arm["ci95"]), 2)
            self.assertAlmostEqual(sum(a["probabilityBest"] for a in s["arms"]), 1.0, delta=0.01)
            self.assertIn("regretEstimate", s)

    def test_reward_is_credited_only_to_the_served_arm_and_only_once(self):
        with Evo() as evo:
            create(evo)
            served = {}
            for _ in range(30):
                p = pull(evo)
                served[p["pullId"]] = p["arm"]
            for pid in served:
                self.assertEqual(reward(evo, pid, 1).json()["arm"], served[pid])
            again = reward(evo, next(iter(served)), 1)
            self.assertEqual(again.status_code, 409)
            self.assertTrue(is_problem(again))
            s = stats(evo)
            for a in s["arms"]:
                self.assertEqual(a["rewardSum"], sum(1 for v in served.values() if v == a["name"]))

    def test_sticky_units_keep_their_arm(self):
        with Evo() as evo:
            create(evo)
            first = {u: pull(evo, unit=u)["arm"] for u in ("u1", "u2", "u3", "u4")}
            for _ in range(5):
                for u, arm in first.items():
                    self.assertEqual(pull(evo, unit=u)["arm"], arm)

    def test_learns_the_better_arm(self):
        with Evo() as evo:
            create(evo, arms=("bad", "good"))
            rng = random.Random(1)
            for _ in range(400):
                p = pull(evo)
                won = rng.random() < (0.9 if p["arm"] == "good" else 0.1)
                self.assertEqual(reward(evo, p["pullId"], 1 if won else 0).status_code, 200)
            s = stats(evo)
            by = {a["name"]: a for a in s["arms"]}
            self.assertGreater(by["good"]["pulls"], by["bad"]["pulls"])
            self.assertGreater(by["good"]["probabilityBest"], 0.95)

    def test_list_update_delete(self):
        with Evo() as evo:
            for i in range(5):
                create(evo, name="e%d" % i)
            r = evo.get("/v1/experiments", params={"pageSize": 2})
            self.assertEqual([e["name"] for e in r.json()["experiments"]], ["e0", "e1"])
            token = r.json()["nextPageToken"]
            r = evo.get("/v1/experiments", params={"pageSize": 2, "pageToken": token})
            self.assertEqual([e["name"] for e in r.json()["experiments"]], ["e2", "e3"])
            spec = evo.get("/v1/experiments/e0").json()
            spec["arms"].append({"name": "d"})
            spec["arms"][0]["retired"] = True
            r = evo.put("/v1/experiments/e0", json=spec) if hasattr(evo, "put") else \
                evo.session.put(evo.url("/v1/experiments/e0"), json=spec, timeout=10)
            self.assertEqual(r.status_code, 200, r.text)
            for _ in range(40):
                self.assertNotEqual(pull(evo, "e0")["arm"], "a")
            r = evo.session.delete(evo.url("/v1/experiments/e0"), timeout=10)
            self.assertEqual(r.status_code, 204)
            self.assertEqual(evo.get("/v1/experiments/e0").status_code, 404)

    def test_policies_by_name(self):
        with Evo() as evo:
            for policy in ("thompson", "klucb", "ucb1", "epsilon-greedy", "softmax", "exp3",
                           "discounted-thompson", "sliding-window-thompson"):
                create(evo, name=policy, policy={"type": policy})
                for _ in range(5):
                    p = pull(evo, policy)
                    self.assertEqual(reward(evo, p["pullId"], 1, policy).status_code, 200)
            create(evo, name="real", rewardType="real")
            p = pull(evo, "real")
            self.assertEqual(reward(evo, p["pullId"], 12.5, "real").status_code, 200)

    def test_compat_routes_on_the_default_experiment(self):
        with Evo() as evo:
            self.assertEqual(evo.get("/arms").status_code, 404)
            create(evo, name="default")
            p = evo.get("/arms").json()
            self.assertIn(p["arm"], ("a", "b", "c"))
            other = next(a for a in ("a", "b", "c") if a != p["arm"])
            wrong = evo.post("/arms", json={"arm": other, "reward": 1, "pullId": p["pullId"]})
            self.assertEqual(wrong.status_code, 400)
            self.assertEqual(wrong.json()["reason"], "ARM_MISMATCH")
            ok = evo.post("/arms", json={"arm": p["arm"], "reward": 1, "pullId": p["pullId"]})
            self.assertEqual(ok.status_code, 200, ok.text)
            s = evo.get("/arms/stats").json()
            self.assertEqual(sum(a["rewardSum"] for a in s["arms"]), 1)


class Attribution(unittest.TestCase):
    def test_silent_pulls_count_as_zero_and_late_rewards_are_recorded(self):
        with Evo() as evo:
            # Windows have one-second resolution: 2 s expires within 2.5 s and is purged
            # no earlier than 4 s after the pull.
            create(evo, arms=("only",), attributionWindowSeconds=2)
            p = pull(evo)
            time.sleep(2.6)
            s = stats(evo)
            self.assertEqual(s["arms"][0]["expired"], 1)
            self.assertEqual(s["pending"], 0)
            late = reward(evo, p["pullId"], 1)
            self.assertEqual(late.status_code, 200, late.text)
            self.assertEqual(stats(evo)["arms"][0]["rewardSum"], 1)
            self.assertEqual(reward(evo, p["pullId"], 1).status_code, 409)


class BadInput(unittest.TestCase):
    def test_nul_in_an_arm_payload_is_data(self):
        with Evo(args=["--modules", "bandit"]) as evo:
            payload = {"html": "<b>x\u0000y</b>", "k\u0000": 1}
            r = evo.post("/v1/experiments", json={"name": "nul", "arms": [
                {"name": "a", "payload": payload}]})
            self.assertEqual(r.status_code, 201, r.text)
            r = evo.post("/v1/experiments/nul/pulls", json={})
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(r.json()["payload"], payload)

    def test_bad_requests_get_clear_4xx_and_store_nothing(self):
        with Evo() as evo:
            create(evo)
            cases = [
                ("POST", "/v1/experiments", {"name": "x", "arms": []}, 400, "#/arms"),
                ("POST", "/v1/experiments", {"name": "x"}, 400, "#/arms"),
                ("POST", "/v1/experiments", {"arms": [{"name": "a"}]}, 400, "#/name"),
                ("POST", "/v1/experiments", {"name": "x", "arms": [{"name": "a"}, {"name": "a"}]},
                 400, "#/arms/1/name"),
                ("POST", "/v1/experiments", {"name": "bad name!", "arms": [{"name": "a"}]}, 400,
                 "#/name"),
                ("POST", "/v1/experiments", {"name": "x", "arms": [{"name": "a"}],
                                             "policy": {"type": "magic"}}, 400, "#/policy/type"),
                ("POST", "/v1/experiments", {"name": "x", "arms": [{"name": "a"}],
                                             "policy": {"type": "epsilon-greedy",
                                                        "epsilon": 2}}, 400, "#/policy"),
                ("POST", "/v1/experiments", {"name": "x", "arms": "a"}, 400, "#/arms"),
                ("POST", "/v1/experiments", {"name": "x", "arms": [{"name": "a"}],
                                             "attributionWindowSeconds": 0}, 400,
                 "#/attributionWindowSeconds"),
                ("POST", "/v1/experiments", {"name": "x", "arms": [{"name": "a"}],
                                             "rewardType": "money"}, 400, "#/rewardType"),
                ("POST", "/v1/experiments", {"name": "exp", "arms": [{"name": "a"}]}, 409, None),
                ("POST", "/v1/experiments/nope/pulls", {}, 404, None),
                ("POST", "/v1/experiments/exp/pulls", {"unitId": 5}, 400, "#/unitId"),
                # NUL in a name or id is a 400; in an arm's payload it is data (below).
                ("POST", "/v1/experiments/exp/pulls", {"unitId": "u\u0000"}, 400, "#/unitId"),
                ("POST", "/v1/experiments", {"name": "x\u0000", "arms": [{"name": "a"}]}, 400,
                 "#/name"),
                ("POST", "/v1/experiments", {"name": "x", "arms": [{"name": "a\u0000"}]}, 400,
                 "#/arms/0/name"),
                ("POST", "/v1/experiments/exp/rewards", {"pullId": "1.1\u0000", "reward": 1},
                 400, "#/pullId"),
                ("POST", "/v1/experiments/exp/rewards", {"pullId": "1.999999", "reward": 1}, 404,
                 None),
                ("POST", "/v1/experiments/exp/rewards", {"pullId": "garbage", "reward": 1}, 400,
                 "#/pullId"),
                ("POST", "/v1/experiments/exp/rewards", {"pullId": "1.1", "reward": "1"}, 400,
                 "#/reward"),
                ("POST", "/v1/experiments/exp/rewards", {"pullId": "1.1", "reward": 0.5}, 400,
                 "#/reward"),
                ("POST", "/v1/experiments/exp/rewards", {"pullId": "1.1"}, 400, "#/reward"),
                ("POST", "/v1/experiments/exp/rewards", {"rewards": []}, 400, "#/rewards"),
                ("GET", "/v1/experiments/nope/stats", None, 404, None),
                ("GET", "/v1/experiments?pageSize=-1", None, 400, None),
                ("GET", "/v1/experiments?pageToken=zzz", None, 400, None),
            ]
            for method, path, body, status, pointer in cases:
                with self.subTest(path=path, body=body):
                    r = evo.session.request(method, evo.url(path), json=body, timeout=10)
                    self.assertEqual(r.status_code, status, r.text)
                    self.assertTrue(is_problem(r), r.text)
                    if pointer:
                        self.assertEqual(r.json()["errors"][0]["pointer"], pointer, r.text)
                    self.assertEqual(evo.get("/livez").status_code, 200)
            # NaN and infinities are not JSON; a raw NaN token is refused by the parser.
            r = evo.post("/v1/experiments/exp/rewards", data='{"pullId":"1.1","reward":NaN}',
                         headers=JSON)
            self.assertEqual(r.status_code, 400)
            names = [e["name"] for e in evo.get("/v1/experiments").json()["experiments"]]
            self.assertEqual(names, ["exp"])
            self.assertEqual(stats(evo)["pulls"], 0)


class Durability(unittest.TestCase):
    def setUp(self):
        self._dir = tempfile.TemporaryDirectory(prefix="evo-e2e-bandit-")
        self.addCleanup(self._dir.cleanup)

    def test_kill_9_during_load_keeps_exactly_what_was_acknowledged(self):
        data_dir = self._dir.name
        with Evo(data_dir=data_dir) as evo:
            create(evo, attributionWindowSeconds=3600)
            acked_pulls = {}
            acked_rewards = {}
            lock = threading.Lock()
            stop = threading.Event()

            def client(seed):
                rng = random.Random(seed)
                s = requests.Session()
                while not stop.is_set():
                    try:
                        r = s.post(evo.url("/v1/experiments/exp/pulls"), json={}, timeout=5)
                        if r.status_code != 200:
                            continue
                        p = r.json()
                        with lock:
                            acked_pulls[p["pullId"]] = p["arm"]
                        if rng.random() < 0.7:
                            v = 1 if rng.random() < 0.5 else 0
                            r = s.post(evo.url("/v1/experiments/exp/rewards"),
                                       json={"pullId": p["pullId"], "reward": v}, timeout=5)
                            if r.status_code == 200:
                                with lock:
                                    acked_rewards[p["pullId"]] = v
                    except (requests.RequestException, ValueError):
                        return

            threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            time.sleep(2.5)
            evo.kill()
            stop.set()
            for t in threads:
                t.join(10)
            self.assertGreater(len(acked_pulls), 100)
        with Evo(data_dir=data_dir) as again:
            s = stats(again)
            by = {a["name"]: a for a in s["arms"]}
            for arm in ("a", "b", "c"):
                served = sum(1 for v in acked_pulls.values() if v == arm)
                credited = sum(v for pid, v in acked_rewards.items() if acked_pulls[pid] == arm)
                # Every acknowledged pull and reward is there; a request in flight at the kill
                # may have been written without its answer arriving (at most one per client).
                self.assertGreaterEqual(by[arm]["pulls"], served)
                self.assertLessEqual(by[arm]["pulls"], served + 4)
                self.assertGreaterEqual(by[arm]["rewardSum"], credited)
                self.assertLessEqual(by[arm]["rewardSum"], credited + 4)
            # Acknowledged rewards cannot be given twice after the restart.
            some = next(iter(acked_rewards))
            self.assertEqual(reward(again, some, 1).status_code, 409)

    def test_clean_restart_keeps_state_and_sticky_units(self):
        data_dir = self._dir.name
        with Evo(data_dir=data_dir) as evo:
            create(evo)
            arms = {u: pull(evo, unit=u)["arm"] for u in ("x", "y", "z")}
            p = pull(evo)
            self.assertEqual(evo.terminate(), 0)
        with Evo(data_dir=data_dir) as again:
            for u, arm in arms.items():
                self.assertEqual(pull(again, unit=u)["arm"], arm)
            self.assertEqual(reward(again, p["pullId"], 1).status_code, 200)
            self.assertEqual(stats(again)["pulls"], 7)

    def test_a_deleted_experiments_uid_is_never_reused_across_kill_9(self):
        # Review D1: the next experiment got the deleted one's uid (MAX(uid)+1), took over its
        # journal after kill -9 (1 pull became 21) and accepted its old pull ids.
        data_dir = self._dir.name
        with Evo(data_dir=data_dir, args=["--modules", "bandit"]) as evo:
            create(evo, name="a", arms=("x", "y"), policy={"type": "ucb1"})
            old_ids = []
            for _ in range(20):
                p = pull(evo, "a")
                self.assertEqual(reward(evo, p["pullId"], 1, "a").status_code, 200)
                old_ids.append(p["pullId"])
            r = evo.session.delete(evo.url("/v1/experiments/a"), timeout=10)
            self.assertEqual(r.status_code, 204)
            create(evo, name="b", arms=("p", "q"))
            first = pull(evo, "b")
            self.assertNotEqual(first["pullId"].split(".")[0], old_ids[0].split(".")[0])
            for pid in old_ids[:2]:
                r = reward(evo, pid, 1, "b")
                self.assertEqual(r.status_code, 404, r.text)
                self.assertEqual(r.json()["reason"], "UNKNOWN_PULL")
            evo.kill()
        with Evo(data_dir=data_dir, args=["--modules", "bandit"]) as again:
            s = stats(again, "b")
            self.assertEqual(s["pulls"], 1)
            self.assertEqual(s["pending"], 1)
            self.assertEqual(sum(a["rewards"] for a in s["arms"]), 0)
            self.assertEqual(reward(again, old_ids[0], 1, "b").status_code, 404)
            self.assertEqual(reward(again, first["pullId"], 1, "b").status_code, 200)
            self.assertEqual(again.get("/v1/experiments/a").status_code, 404)

    def test_a_corrupt_snapshot_refuses_the_start_with_a_clear_message(self):
        data_dir = self._dir.name
        with Evo(data_dir=data_dir, args=["--modules", "bandit"]) as evo:
            create(evo)
            for _ in range(10):
                pull(evo)
            self.assertEqual(evo.terminate(), 0)
        snapshot = os.path.join(data_dir, "bandit", "snapshot.bin")
        with open(snapshot, "r+b") as f:
            f.truncate(os.path.getsize(snapshot) - 5)
        import subprocess
        from harness import EVO
        r = subprocess.run([EVO, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                            "--modules", "bandit", "--log-format", "text"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertLess(r.returncode, 128)  # an exit, not a signal or abort
        self.assertIn("snapshot.bin is corrupt", r.stdout + r.stderr)

    def test_bandit_sync_always_answers_and_keeps_state(self):
        data_dir = self._dir.name
        with Evo(data_dir=data_dir, args=["--modules", "bandit", "--bandit-sync", "always"]) as evo:
            create(evo)
            ids = [pull(evo)["pullId"] for _ in range(20)]
            for pid in ids[:10]:
                self.assertEqual(reward(evo, pid, 1).status_code, 200)
            evo.kill()
        with Evo(data_dir=data_dir, args=["--modules", "bandit"]) as again:
            s = stats(again)
            self.assertEqual(s["pulls"], 20)
            self.assertEqual(sum(a["rewardSum"] for a in s["arms"]), 10)


if __name__ == "__main__":
    unittest.main()


class Cli(unittest.TestCase):
    def run_evo(self, *args):
        import subprocess
        from harness import EVO
        return subprocess.run([EVO] + list(args), capture_output=True, text=True, timeout=120)

    def test_simulate_prints_the_regret_table(self):
        r = self.run_evo("bandit", "simulate", "--runs", "4", "--horizon", "1000", "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("thompson", r.stdout)
        self.assertIn("ln", r.stdout)
        j = self.run_evo("bandit", "simulate", "--runs", "2", "--horizon", "1000", "--format",
                         "json", "--policy", "thompson")
        self.assertEqual(j.returncode, 0, j.stderr)
        self.assertIsInstance(json.loads(j.stdout), dict)

    def test_simulate_rejects_bad_arguments(self):
        for args in (["--runs", "0"], ["--horizon", "-5"], ["--policy", "magic"]):
            with self.subTest(args=args):
                r = self.run_evo("bandit", "simulate", "--quiet", *args)
                self.assertEqual(r.returncode, 2, (r.stdout, r.stderr))
                self.assertTrue(r.stderr.strip())
