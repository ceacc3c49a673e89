-- bench/queue_pg.sql — the PostgreSQL peer of bench/queue.sh: a FOR UPDATE SKIP LOCKED job
-- queue (the usual "Postgres as a queue" table). bench/queue_pgbench.sql drives it.
DROP TABLE IF EXISTS jobs;
CREATE TABLE jobs (
  id           bigserial PRIMARY KEY,
  payload      jsonb NOT NULL,
  available_at timestamptz NOT NULL DEFAULT now(),
  leased_until timestamptz,
  attempt      int NOT NULL DEFAULT 0
);
CREATE INDEX jobs_available_at ON jobs (available_at);
