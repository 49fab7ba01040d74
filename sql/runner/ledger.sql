-- The packet runner's ledger: who applied which step of KB-7D57, when, how many attempts, and the
-- catalog fingerprint before and after. Its own schema, so creating it never changes the catalog
-- fingerprint of `public` that the runner compares (sql/probes/catalog_fingerprint.sql).
-- Re-runnable; created by the runner under its advisory lock, so two creators never race.
CREATE SCHEMA IF NOT EXISTS birthgate_ledger;

CREATE TABLE IF NOT EXISTS birthgate_ledger.apply_run (
  run_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind              text NOT NULL CHECK (kind IN ('apply', 'rollback', 'step')),
  target_step       integer,
  -- KB-7D57 "Owner-approval checklist": the approval is recorded before the one-way door opens.
  owner             text CHECK (length(owner) BETWEEN 1 AND 200),
  approval_id       text CHECK (length(approval_id) BETWEEN 1 AND 200),
  status            text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'applied', 'rolled_back', 'refused', 'failed', 'stopped')),
  entry_hash        text,
  entry_fingerprint jsonb,
  exit_hash         text,
  exit_fingerprint  jsonb,
  backup_dir        text,
  error_code        text,
  error             text,
  started_by        text NOT NULL DEFAULT session_user,
  started_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at       timestamptz
);

CREATE TABLE IF NOT EXISTS birthgate_ledger.apply_step (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id           bigint NOT NULL REFERENCES birthgate_ledger.apply_run (run_id),
  step             integer NOT NULL,
  action           text NOT NULL CHECK (action IN ('up', 'down', 'skip')),
  status           text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed', 'refused')),
  attempts         integer NOT NULL DEFAULT 0,
  owner            text,
  approval_id      text,
  detail           text,
  sqlstate         text,
  entry_hash       text,
  exit_hash        text,
  exit_fingerprint jsonb,
  started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at      timestamptz
);
CREATE INDEX IF NOT EXISTS apply_step_run ON birthgate_ledger.apply_step (run_id, id);
CREATE INDEX IF NOT EXISTS apply_step_latest ON birthgate_ledger.apply_step (id DESC) WHERE exit_hash IS NOT NULL;

-- pgroll: every DDL carries its own lock_timeout; each try and its SQLSTATE is kept (55P03 retried).
CREATE TABLE IF NOT EXISTS birthgate_ledger.apply_attempt (
  step_row_id  bigint NOT NULL REFERENCES birthgate_ledger.apply_step (id),
  attempt      integer NOT NULL,
  sqlstate     text,
  message      text,
  duration_ms  integer NOT NULL,
  backoff_ms   integer,
  at           timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (step_row_id, attempt)
);
