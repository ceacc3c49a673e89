// A webhook receiver that checks every delivery with the `standardwebhooks` npm package —
// a verifier nobody on the evo team wrote. Usage: node receiver.mjs PORT SECRET [SECRET...]
// Prints "listening PORT" once ready. POST /<any>: 204 when a secret verifies the delivery,
// 401 otherwise (and answers the verification handshake). GET /stats: counts. GET /bodies:
// the raw text of the last 100 verified deliveries, oldest first.
import http from "node:http";
import { Webhook } from "standardwebhooks";

const [port, ...secrets] = process.argv.slice(2);
const verifiers = secrets.map((s) => new Webhook(s.replace(/^whsec_/, "")));
const stats = { received: 0, verified: 0, bad: 0, distinct: 0, duplicates: 0, errors: [] };
const seen = new Set();
const bodies = [];

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.method === "GET" && req.url === "/bodies") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(bodies));
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    stats.received++;
    let payload = null;
    for (const wh of verifiers) {
      try {
        payload = wh.verify(body, req.headers);
        break;
      } catch (e) {
        if (stats.errors.length < 5) stats.errors.push(String(e.message || e));
      }
    }
    if (payload === null) {
      stats.bad++;
      res.writeHead(401);
      res.end();
      return;
    }
    stats.verified++;
    bodies.push(body);
    if (bodies.length > 100) bodies.shift();
    if (payload.type === "webhook.verification") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ challenge: payload.challenge }));
      return;
    }
    const id = req.headers["webhook-id"];
    if (seen.has(id)) stats.duplicates++;
    else {
      seen.add(id);
      stats.distinct++;
    }
    res.writeHead(204);
    res.end();
  });
});
server.listen(Number(port), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
