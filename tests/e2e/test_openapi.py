"""/openapi.json of evo with every module and route enabled passes Redocly CLI's recommended
ruleset (tools/redocly, pinned by its package-lock.json): no error and no warning, except the
rules tools/redocly/redocly.yaml switches off, each with the issue that turns it back on.
The schema check of the same document is test_ids.HttpBasics.test_openapi_is_a_valid_3_1_document."""

import json
import os
import subprocess
import tempfile
import unittest

from harness import Evo, npm_tool


class Lint(unittest.TestCase):
    def test_the_document_passes_the_recommended_ruleset(self):
        tool = npm_tool("redocly")
        # --bandit-default-experiment adds the bandit compatibility routes (/arms...).
        with Evo(args=["--modules", "all", "--bandit-default-experiment", "demo"]) as evo:
            r = evo.get("/openapi.json")
            self.assertEqual(r.status_code, 200, r.text)
            document = r.text
        with tempfile.TemporaryDirectory(prefix="evo-e2e-") as tmp:
            path = os.path.join(tmp, "openapi.json")
            with open(path, "w") as f:
                f.write(document)
            # No telemetry and no update check: the lint never touches the network.
            env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true",
                       NO_COLOR="1")
            p = subprocess.run(
                ["node", os.path.join(tool, "node_modules", "@redocly", "cli", "bin", "cli.js"),
                 "lint", "--config", os.path.join(tool, "redocly.yaml"), "--lint-config", "error",
                 "--format", "json", "--max-problems", "1000", path],
                capture_output=True, text=True, timeout=120, env=env, cwd=tmp)
        try:
            report = json.loads(p.stdout)
        except ValueError:
            self.fail("redocly printed no JSON report (exit %d):\n%s%s"
                      % (p.returncode, p.stdout, p.stderr))
        problems = ["%s %s: %s (%s)" % (x["severity"], x["ruleId"], x["message"],
                                        ", ".join(l.get("pointer", "") for l in x["location"]))
                    for x in report["problems"]]
        # Redocly exits 0 on warnings; the test fails on them too.
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
