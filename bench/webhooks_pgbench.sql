-- bench/webhooks_pgbench.sql — pgbench script for bench/webhooks.sh: one run = one durable
-- publish into the transactional outbox of bench/webhooks_pg.sql — the message row (the same
-- 203-byte JSON payload bench/webhooks.lua publishes to evo) and one delivery row per active
-- endpoint subscribed to its type, in one statement and so one transaction (one round trip,
-- the cheapest form of "INSERT the message + its deliveries, COMMIT").
WITH m AS (INSERT INTO outbox_messages (event_type, payload) VALUES ('bench.event', '{"orderId":"ord_2xK9fQ7mLp","customer":{"id":"cus_8HdT3vNq","email":"jane.doe@example.com"},"amount":4999,"currency":"EUR","items":[{"sku":"SKU-1001","qty":2},{"sku":"SKU-2002","qty":1}],"status":"paid"}') RETURNING id) INSERT INTO outbox_deliveries (message_id, endpoint_id) SELECT m.id, e.id FROM m, endpoints e WHERE e.active AND 'bench.event' = ANY (e.event_types);
