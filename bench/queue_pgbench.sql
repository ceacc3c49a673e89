-- bench/queue_pgbench.sql — pgbench script for bench/queue.sh: one run = one message through
-- the three steps a consumer takes, each its own (autocommit) transaction:
--   1. enqueue: INSERT one message (the same ~100-byte JSON payload bench/queue.lua sends evo)
--   2. lease:   claim the oldest visible message for 30 s (FOR UPDATE SKIP LOCKED), id -> :id
--   3. ack:     DELETE it
-- The lease is wrapped so that it always yields one row (0 when nothing was visible), because
-- \gset aborts the client on an empty answer; a run that leased nothing acks nothing, and
-- bench/queue.sh counts acked messages from pg_stat_user_tables.n_tup_del, not from tps.
INSERT INTO jobs (payload, available_at) VALUES ('{"n":1,"text":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}', now());
WITH leased AS (UPDATE jobs SET leased_until = now() + interval '30 s', attempt = attempt + 1 WHERE id = (SELECT id FROM jobs WHERE available_at <= now() AND (leased_until IS NULL OR leased_until < now()) ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id) SELECT coalesce((SELECT id FROM leased), 0) AS id \gset
\if :id > 0
DELETE FROM jobs WHERE id = :id;
\endif
