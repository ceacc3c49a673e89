"""/openapi.json of evo with every module and route enabled passes Redocly CLI's recommended
ruleset (tools/redocly, pinned by its package-lock.json): no error and no warning, except the
rules tools/redocly/redocly.yaml switches off, each with the issue that turns it back on.
The schema check of the same document is test_ids.HttpBasics.test_openapi_is_a_valid_3_1_document.
Scopes checks the scope each operation declares (issue 13, README "Scopes")."""

import json
import os
import re
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


# The module each path belongs to, by prefix; a path none matches fails the test, so a new
# module's routes are added here with their scopes.
MODULES = [
    ("/v1/ids", "ids"), ("/v1/uuids", "ids"), ("/v1/ulids", "ids"),
    ("/v1/spam", "spam"),
    ("/v1/experiments", "bandit"), ("/arms", "bandit"),
    ("/v1/queues", "queue"),
    ("/v1/applications", "webhooks"), ("/v1/event-types", "webhooks"),
    ("/v1/endpoints", "webhooks"), ("/v1/messages", "webhooks"),
]
PUBLIC = {"/livez", "/readyz", "/metrics", "/openapi.json"}
# Operator-only routes (issue 13): admin, not MODULE:write.
ADMIN = {("delete", "/v1/queues/{name}"),
         ("post", "/v1/queues/{name}/dead-letters:redrive"),
         ("delete", "/v1/queues/{name}/dead-letters")}
# GETs that are not reads: the original bandit server's GET /arms records a pull, and an
# endpoint's signing secret is sensitive.
WRITING_GETS = {"/arms": "bandit:write", "/v1/endpoints/{id}/secret": "webhooks:write"}
# Decisions worth pinning: side-effect-free POSTs are reads; training is a write (its
# directory form also needs admin, checked by the handler: spam_http_test).
PINNED = {("get", "/v1/ids"): "ids:read",
          ("post", "/v1/ids:decode"): "ids:read",
          ("post", "/v1/spam/classify"): "spam:read",
          ("post", "/v1/spam/classify:batch"): "spam:read",
          ("post", "/v1/spam/models"): "spam:write",
          ("post", "/v1/experiments/{name}/pulls"): "bandit:write"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def module_of(path):
    for prefix, module in MODULES:
        if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + ":"):
            return module
    return None


class Scopes(unittest.TestCase):
    """Every operation but health, metrics and the document itself needs exactly one scope,
    named for its module and by what it does."""

    @classmethod
    def setUpClass(cls):
        # Every module, and the bandit compatibility routes (/arms...).
        with Evo(args=["--modules", "all", "--bandit-default-experiment", "demo"]) as evo:
            r = evo.get("/openapi.json")
            assert r.status_code == 200, r.text
            cls.document = r.json()

    def operations(self):
        for path, item in sorted(self.document["paths"].items()):
            for method, operation in sorted(item.items()):
                if method in METHODS:
                    yield method, path, operation

    def test_the_bearer_scheme_is_declared(self):
        scheme = self.document["components"]["securitySchemes"]["bearer"]
        self.assertEqual((scheme["type"], scheme["scheme"]), ("http", "bearer"))

    def test_health_metrics_and_the_document_are_public(self):
        for method, path, operation in self.operations():
            if path in PUBLIC:
                self.assertEqual(operation.get("security"), [], "%s %s" % (method, path))
        self.assertEqual({p for _, p, _ in self.operations() if p in PUBLIC}, PUBLIC)

    def test_every_other_operation_needs_one_valid_scope_of_its_module(self):
        seen = 0
        for method, path, operation in self.operations():
            if path in PUBLIC:
                continue
            where = "%s %s" % (method.upper(), path)
            module = module_of(path)
            self.assertIsNotNone(module, where + ": a path of no known module")
            security = operation.get("security")
            self.assertIsInstance(security, list, where)
            self.assertEqual(len(security), 1, where + ": %r" % security)
            self.assertEqual(list(security[0]), ["bearer"], where)
            scopes = security[0]["bearer"]
            self.assertEqual(len(scopes), 1, where + ": %r" % scopes)
            scope = scopes[0]
            self.assertTrue(scope == "admin" or
                            re.fullmatch(re.escape(module) + ":(read|write)", scope),
                            where + ": scope %r" % scope)
            if (method, path) in ADMIN:
                self.assertEqual(scope, "admin", where)
            if method == "get":
                expected = WRITING_GETS.get(path, module + ":read")
                self.assertEqual(scope, expected, where)
            if (method, path) in PINNED:
                self.assertEqual(scope, PINNED[(method, path)], where)
            seen += 1
        self.assertGreater(seen, 50)

    def test_only_the_operator_routes_need_admin(self):
        admin = {(m, p) for m, p, o in self.operations()
                 if o.get("security") == [{"bearer": ["admin"]}]}
        self.assertEqual(admin, ADMIN)

    def test_the_listed_exceptions_and_pins_exist(self):
        operations = {(m, p) for m, p, _ in self.operations()}
        for key in ADMIN | set(PINNED) | {("get", p) for p in WRITING_GETS}:
            self.assertIn(key, operations)


if __name__ == "__main__":
    unittest.main()
