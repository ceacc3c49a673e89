// bench/webhooks_timing_receiver.mjs — the receiver of bench/webhooks.sh's latency part
// (publish -> first attempt). Node's standard library only.
//
//   node bench/webhooks_timing_receiver.mjs PORT SECRET     prints "listening PORT" once ready
//
// POST /<any path>: a Standard Webhooks delivery. The v1 HMAC-SHA256 signature over
// "id.timestamp.body" is checked with SECRET (whsec_...): 401 when it does not match, 204
// otherwise. The first arrival of each (path, webhook-id) pair — one endpoint's first attempt
// at one message — is timed against the payload's "sentMs" (a string, wall-clock ms with a
// fraction, that the publisher stamped just before sending POST /v1/messages): the arrival
// time is taken when the request's headers are in, before the body is read or verified.
// The first arrival of a webhook-id on any path — the message's first attempt anywhere — is
// timed too. Later arrivals of a pair count as duplicates.
//
// GET /stats    {"received","distinct","duplicates","badSignatures","paths","messages",
//                "bodyBytes":{"min","max"}} — cheap, for polling
// GET /latency  {"deliveries":{n,mean,p50,p90,p99,p999,max},"messages":{...}} in ms,
//               over every timed first arrival so far (sorted on each call)
import crypto from "node:crypto";
import http from "node:http";
import { performance } from "node:perf_hooks";

const [portArg, secret] = process.argv.slice(2);
if (!portArg || !secret) {
  console.error("usage: node webhooks_timing_receiver.mjs PORT whsec_SECRET");
  process.exit(2);
}
const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
const nowMs = () => performance.timeOrigin + performance.now();

const stats = { received: 0, distinct: 0, duplicates: 0, badSignatures: 0, untimed: 0 };
let minBytes = Infinity;
let maxBytes = 0;
const seenPair = new Set();
const seenMessage = new Set();
const paths = new Set();
const deliveryMs = [];
const messageMs = [];

function verify(id, ts, sigHeader, body) {
  if (!id || !ts || !sigHeader) return false;
  const mac = crypto.createHmac("sha256", key).update(`${id}.${ts}.`).update(body).digest();
  for (const part of sigHeader.split(" ")) {
    const [version, b64] = part.split(",", 2);
    if (version !== "v1" || !b64) continue;
    const given = Buffer.from(b64, "base64");
    if (given.length === mac.length && crypto.timingSafeEqual(given, mac)) return true;
  }
  return false;
}

function summary(values) {
  if (values.length === 0) return { n: 0 };
  const v = Float64Array.from(values).sort();
  const at = (q) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
  let sum = 0;
  for (const x of v) sum += x;
  const r = (x) => Math.round(x * 1000) / 1000;
  return {
    n: v.length, mean: r(sum / v.length), min: r(v[0]), p50: r(at(0.5)), p90: r(at(0.9)),
    p99: r(at(0.99)), p999: r(at(0.999)), max: r(v[v.length - 1]),
  };
}

const server = http.createServer((req, res) => {
  const arrived = nowMs();
  if (req.method === "GET" && (req.url === "/stats" || req.url === "/latency")) {
    const doc = req.url === "/stats"
      ? { ...stats, paths: paths.size, messages: seenMessage.size,
          bodyBytes: { min: minBytes === Infinity ? 0 : minBytes, max: maxBytes } }
      : { deliveries: summary(deliveryMs), messages: summary(messageMs) };
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(doc));
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    stats.received++;
    minBytes = Math.min(minBytes, body.length);
    maxBytes = Math.max(maxBytes, body.length);
    const id = req.headers["webhook-id"];
    if (!verify(id, req.headers["webhook-timestamp"], req.headers["webhook-signature"], body)) {
      stats.badSignatures++;
      res.writeHead(401);
      res.end();
      return;
    }
    let doc = null;
    try {
      doc = JSON.parse(body.toString("utf8"));
    } catch {
      doc = null;
    }
    if (doc && doc.type === "webhook.verification") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ challenge: doc.challenge }));
      return;
    }
    const path = req.url.split("?")[0];
    const pair = `${path} ${id}`;
    if (seenPair.has(pair)) {
      stats.duplicates++;
    } else {
      seenPair.add(pair);
      paths.add(path);
      stats.distinct++;
      const sent = doc && doc.data ? parseFloat(doc.data.sentMs) : NaN;
      if (Number.isFinite(sent)) {
        deliveryMs.push(arrived - sent);
        if (!seenMessage.has(id)) {
          seenMessage.add(id);
          messageMs.push(arrived - sent);
        }
      } else {
        stats.untimed++;
      }
    }
    res.writeHead(204);
    res.end();
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.listen(Number(portArg), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
