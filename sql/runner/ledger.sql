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

-- ── The packet lease (issue 9 item 1) ──
-- A session advisory lock (packet/lock.ts) cannot span Temporal activities: each packet activity
-- holds it only for its own duration. Across activities, this row names the workflow run that owns
-- the packet, from its first activity to its last, including days at the one-way door. Every packet
-- entry point refuses while another holder has it (packet/lock.ts): the direct runner
-- (packet/apply.ts), the rehearsal, a second workflow. At most one row (lease = 'packet'). A holder
-- whose workflow run closed without releasing it (terminated) is cleared by the next workflow's
-- first activity after Temporal confirms the run is closed; every acquire, release and clear is logged.
CREATE TABLE IF NOT EXISTS birthgate_ledger.packet_lease (
  lease          text PRIMARY KEY DEFAULT 'packet' CHECK (lease = 'packet'),
  workflow_id    text NOT NULL CHECK (length(workflow_id) BETWEEN 1 AND 500),
  workflow_run   text NOT NULL CHECK (length(workflow_run) BETWEEN 1 AND 200),
  kind           text NOT NULL CHECK (kind IN ('apply', 'rollback')),
  ledger_run_id  bigint REFERENCES birthgate_ledger.apply_run (run_id),
  acquired_by    text NOT NULL DEFAULT session_user,
  acquired_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS birthgate_ledger.packet_lease_event (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event          text NOT NULL CHECK (event IN ('acquired', 'released', 'cleared')),
  workflow_id    text NOT NULL,
  workflow_run   text NOT NULL,
  kind           text NOT NULL,
  ledger_run_id  bigint,
  detail         text,
  by_user        text NOT NULL DEFAULT session_user,
  at             timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- ── Archived ledgers (issue 9 item 4) ──
-- `world load --force` drops the estate the runs above changed: their fingerprints describe a catalog
-- that is gone, and the next apply's entry drift check would compare the new estate with it. The whole
-- schema is renamed to birthgate_ledger_archive_<timestamp> in the reload's transaction (packet/ledger.ts
-- archiveLedger), a fresh ledger is created, and this table of the fresh ledger says where the old one
-- went and which runs it held.
CREATE TABLE IF NOT EXISTS birthgate_ledger.ledger_archive (
  archive_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  archive_schema  text NOT NULL UNIQUE,
  reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
  runs            jsonb NOT NULL,
  archived_by     text NOT NULL DEFAULT session_user,
  archived_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- ── Live bodies (issue 9 item 5) ──
-- KB-7D57 steps 4 and 5 patch two estate functions in place. On a real estate their bodies are
-- production's (KB-2590 §4 md5s), not the project's reconstruction, so just before each of those ups
-- the runner records the function as it is live (packet/live-bodies.ts): OID, owner, md5 of prosrc
-- and of pg_get_functiondef (KB-2590 §4's measure), the definition itself and its ACL. The up derives
-- its patch from that body; the down restores this definition byte for byte (md5 equal to def_md5).
-- patched_md5: what the up left (set once it committed); restored_*: the down that put it back.
CREATE TABLE IF NOT EXISTS birthgate_ledger.live_body (
  capture_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id           bigint NOT NULL REFERENCES birthgate_ledger.apply_run (run_id),
  step_row_id      bigint REFERENCES birthgate_ledger.apply_step (id),
  step             integer NOT NULL,
  signature        text NOT NULL,
  fn_oid           bigint NOT NULL,
  owner            text NOT NULL,
  prosrc_md5       text NOT NULL,
  def_md5          text NOT NULL,
  definition       text NOT NULL,
  acl              text,
  expected_md5     text,
  patched_md5      text,
  restored_run_id  bigint REFERENCES birthgate_ledger.apply_run (run_id),
  restored_at      timestamptz,
  captured_by      text NOT NULL DEFAULT session_user,
  captured_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS live_body_latest ON birthgate_ledger.live_body (signature, capture_id DESC);
