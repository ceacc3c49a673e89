-- bench/webhooks_pg.sql — the PostgreSQL peer of bench/webhooks.sh: a transactional outbox, the
-- usual way to publish webhooks from a PostgreSQL application. A publish inserts the message
-- and one pending delivery per subscribed endpoint in one transaction; a relay (not measured)
-- would later scan outbox_deliveries by next_attempt_at and send them. bench/webhooks.sh fills
-- `endpoints` with 1 or 10 rows before each run; bench/webhooks_pgbench.sql is the publish.
DROP TABLE IF EXISTS outbox_deliveries, outbox_messages, endpoints;
CREATE TABLE endpoints (
  id          bigserial PRIMARY KEY,
  url         text NOT NULL,
  event_types text[] NOT NULL,
  secret      text NOT NULL,
  active      boolean NOT NULL DEFAULT true
);
CREATE TABLE outbox_messages (
  id         bigserial PRIMARY KEY,
  event_type text NOT NULL,
  payload    jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE outbox_deliveries (
  message_id      bigint NOT NULL,
  endpoint_id     bigint NOT NULL,
  state           text NOT NULL DEFAULT 'pending',
  attempts        int NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (message_id, endpoint_id)
);
-- what the relay scans
CREATE INDEX outbox_deliveries_due ON outbox_deliveries (next_attempt_at) WHERE state = 'pending';
