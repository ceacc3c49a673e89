"""End-to-end tests of `evo serve` as a process: the data dir belongs to one server at a time
(review 2026-12, durability D2), which CLI commands may run beside it."""

import os
import signal
import subprocess
import tempfile
import time
import unittest

from harness import Evo, EVO


def run(*args, timeout=30):
    return subprocess.run([EVO] + list(args), capture_output=True, text=True, timeout=timeout)


class DataDirLock(unittest.TestCase):
    def test_a_second_server_on_the_same_data_dir_exits_1_at_once(self):
        with tempfile.TemporaryDirectory() as d, Evo(data_dir=d) as first:
            for modules in ("all", "queue", "bandit", "webhooks", "spam"):
                with self.subTest(modules=modules):
                    start = time.time()
                    p = run("serve", "--listen", "127.0.0.1:0", "--data-dir", d,
                            "--modules", modules)
                    self.assertEqual(p.returncode, 1, p.stderr)
                    self.assertIn("data dir %s is in use by pid %d" % (d, first.proc.pid),
                                  p.stderr)
                    self.assertLess(time.time() - start, 20)
            # The first one never noticed.
            self.assertEqual(first.get("/livez").status_code, 200)

    def test_ids_only_servers_and_id_new_share_a_data_dir(self):
        # IDs keep no state but their worker leases, which keep processes sharing a dir apart.
        with tempfile.TemporaryDirectory() as d, Evo(data_dir=d) as full, \
                Evo(data_dir=d, args=["--modules", "ids"]) as ids_only:
            workers = set()
            for evo in (full, ids_only):
                i = evo.get("/v1/ids").json()["ids"][0]
                workers.add(evo.get("/v1/ids/%s" % i).json()["workerId"])
            p = run("id", "new", "--data-dir", d, "--format", "decimal")
            self.assertEqual(p.returncode, 0, p.stderr)
            workers.add(full.get("/v1/ids/%s" % p.stdout.split()[0]).json()["workerId"])
            self.assertEqual(len(workers), 3)

    def test_cli_reads_beside_a_server_and_refuses_to_change(self):
        with tempfile.TemporaryDirectory() as d, Evo(data_dir=d) as evo:
            r = evo.session.put(evo.url("/v1/queues/jobs"), json={}, timeout=10)
            self.assertIn(r.status_code, (200, 201), r.text)
            self.assertEqual(run("queue", "ls", "--data-dir", d).returncode, 0)
            self.assertEqual(run("queue", "dlq", "jobs", "--data-dir", d).returncode, 0)
            self.assertEqual(run("spam", "models", "--data-dir", d).returncode, 0)
            message = "data dir %s is in use by pid %d" % (d, evo.proc.pid)
            for argv in (["queue", "dlq", "jobs", "--purge"], ["queue", "dlq", "jobs", "--redrive"],
                         ["spam", "activate", "1"], ["spam", "train", d]):
                with self.subTest(argv=argv):
                    p = run(*argv, "--data-dir", d)
                    self.assertEqual(p.returncode, 1, p.stderr)
                    self.assertIn(message, p.stderr)

    def test_the_lock_ends_with_the_process_even_on_kill_9(self):
        with tempfile.TemporaryDirectory() as d:
            first = Evo(data_dir=d)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            self.assertTrue(os.path.exists(os.path.join(d, "LOCK")))  # left behind, harmless
            with Evo(data_dir=d) as second:
                self.assertEqual(second.get("/livez").status_code, 200)
            first.cleanup()
            # Nothing runs there now: the CLI may change it.
            p = run("queue", "dlq", "jobs", "--purge", "--data-dir", d)
            self.assertNotIn("in use", p.stderr)


if __name__ == "__main__":
    unittest.main()
