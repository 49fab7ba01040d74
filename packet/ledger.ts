// The run ledger (sql/runner/ledger.sql): every run, step and attempt, with entry and exit
// fingerprints. Written through the pool in autocommit, never inside a step's transaction, so a
// failed step still leaves its record.
import type { Queryable } from '../db/pool.ts';
import { readSql } from '../db/sql-files.ts';
import { fingerprintHash, type Fingerprint } from './fingerprint.ts';

export type RunKind = 'apply' | 'rollback' | 'step';
export type RunStatus = 'running' | 'applied' | 'rolled_back' | 'refused' | 'failed' | 'stopped';
export type StepAction = 'up' | 'down' | 'skip';
export type StepStatus = 'running' | 'ok' | 'failed' | 'refused';

export async function ensureLedger(q: Queryable): Promise<void> {
  await q.query(readSql('runner/ledger.sql'));
}

export async function startRun(
  q: Queryable,
  run: { kind: RunKind; targetStep?: number; owner?: string; approvalId?: string; entry?: Fingerprint },
): Promise<string> {
  const r = await q.query<{ run_id: string }>(
    `INSERT INTO birthgate_ledger.apply_run (kind, target_step, owner, approval_id, entry_hash, entry_fingerprint)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING run_id`,
    [run.kind, run.targetStep ?? null, run.owner ?? null, run.approvalId ?? null,
     run.entry ? fingerprintHash(run.entry) : null, run.entry ? JSON.stringify(run.entry) : null],
  );
  return r.rows[0]!.run_id;
}

export async function setRunBackup(q: Queryable, runId: string, backupDir: string): Promise<void> {
  await q.query('UPDATE birthgate_ledger.apply_run SET backup_dir = $2 WHERE run_id = $1', [runId, backupDir]);
}

export async function finishRun(
  q: Queryable,
  runId: string,
  end: { status: RunStatus; exit?: Fingerprint; errorCode?: string; error?: string },
): Promise<void> {
  await q.query(
    `UPDATE birthgate_ledger.apply_run
        SET status = $2, exit_hash = $3, exit_fingerprint = $4, error_code = $5, error = $6, finished_at = clock_timestamp()
      WHERE run_id = $1`,
    [runId, end.status, end.exit ? fingerprintHash(end.exit) : null, end.exit ? JSON.stringify(end.exit) : null,
     end.errorCode ?? null, end.error ?? null],
  );
}

export async function startStepRow(
  q: Queryable,
  row: { runId: string; step: number; action: StepAction; owner?: string; approvalId?: string; entryHash?: string },
): Promise<string> {
  const r = await q.query<{ id: string }>(
    `INSERT INTO birthgate_ledger.apply_step (run_id, step, action, owner, approval_id, entry_hash)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [row.runId, row.step, row.action, row.owner ?? null, row.approvalId ?? null, row.entryHash ?? null],
  );
  return r.rows[0]!.id;
}

export async function finishStepRow(
  q: Queryable,
  id: string,
  end: { status: StepStatus; attempts?: number; detail?: string; sqlstate?: string; exit?: Fingerprint },
): Promise<void> {
  await q.query(
    `UPDATE birthgate_ledger.apply_step
        SET status = $2, attempts = coalesce($3, attempts), detail = $4, sqlstate = $5,
            exit_hash = $6, exit_fingerprint = $7, finished_at = clock_timestamp()
      WHERE id = $1`,
    [id, end.status, end.attempts ?? null, end.detail ?? null, end.sqlstate ?? null,
     end.exit ? fingerprintHash(end.exit) : null, end.exit ? JSON.stringify(end.exit) : null],
  );
}

export type AttemptRecord = { attempt: number; sqlstate?: string; message?: string; durationMs: number; backoffMs?: number };

export async function recordAttempt(q: Queryable, stepRowId: string, a: AttemptRecord): Promise<void> {
  await q.query(
    `INSERT INTO birthgate_ledger.apply_attempt (step_row_id, attempt, sqlstate, message, duration_ms, backoff_ms)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [stepRowId, a.attempt, a.sqlstate ?? null, a.message?.slice(0, 2000) ?? null, Math.round(a.durationMs),
     a.backoffMs === undefined ? null : Math.round(a.backoffMs)],
  );
  await q.query('UPDATE birthgate_ledger.apply_step SET attempts = greatest(attempts, $2) WHERE id = $1', [stepRowId, a.attempt]);
}

export type RecordedState = { runId: string; step: number | null; hash: string; fingerprint: Fingerprint; at: string };

/**
 * The last catalog state the runner itself recorded: the newest exit fingerprint of a step or a run.
 * The entry drift check compares the live catalog with it (packet/drift.ts). None before the first run.
 * A refused run is left out: it changed nothing, and the exit it records is the state it refused —
 * taken as the runner's own, a drift refused once (ENTRY_DRIFT) would pass the next run unseen.
 */
export async function lastRecordedState(q: Queryable): Promise<RecordedState | undefined> {
  const exists = await q.query<{ ok: boolean }>(`SELECT to_regclass('birthgate_ledger.apply_step') IS NOT NULL AS ok`);
  if (!exists.rows[0]?.ok) return undefined;
  const r = await q.query<{ run_id: string; step: number | null; hash: string; fingerprint: Fingerprint; at: Date }>(
    `SELECT run_id, step, hash, fingerprint, at FROM (
       SELECT run_id, step, exit_hash AS hash, exit_fingerprint AS fingerprint, finished_at AS at
         FROM birthgate_ledger.apply_step WHERE exit_hash IS NOT NULL
       UNION ALL
       SELECT run_id, NULL, exit_hash, exit_fingerprint, finished_at
         FROM birthgate_ledger.apply_run WHERE exit_hash IS NOT NULL AND status <> 'refused'
     ) s ORDER BY at DESC NULLS LAST LIMIT 1`,
  );
  const row = r.rows[0];
  return row ? { runId: row.run_id, step: row.step, hash: row.hash, fingerprint: row.fingerprint, at: row.at.toISOString() } : undefined;
}

export type LedgerStep = {
  id: string;
  step: number;
  action: StepAction;
  status: StepStatus;
  attempts: number;
  owner: string | null;
  approval_id: string | null;
  detail: string | null;
  sqlstate: string | null;
  entry_hash: string | null;
  exit_hash: string | null;
  tries: Array<{ attempt: number; sqlstate: string | null; message: string | null; duration_ms: number; backoff_ms: number | null }>;
};

export type LedgerRun = {
  run_id: string;
  kind: RunKind;
  status: RunStatus;
  target_step: number | null;
  owner: string | null;
  approval_id: string | null;
  entry_hash: string | null;
  exit_hash: string | null;
  backup_dir: string | null;
  error_code: string | null;
  error: string | null;
  steps: LedgerStep[];
};

export async function readRun(q: Queryable, runId: string): Promise<LedgerRun> {
  const run = await q.query<Omit<LedgerRun, 'steps'>>(
    `SELECT run_id, kind, status, target_step, owner, approval_id, entry_hash, exit_hash, backup_dir, error_code, error
       FROM birthgate_ledger.apply_run WHERE run_id = $1`,
    [runId],
  );
  if (!run.rows[0]) throw new Error(`ledger has no run ${runId}`);
  const steps = await q.query<LedgerStep>(
    `SELECT s.id, s.step, s.action, s.status, s.attempts, s.owner, s.approval_id, s.detail, s.sqlstate, s.entry_hash, s.exit_hash,
            coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'sqlstate', a.sqlstate, 'message', a.message,
                                                          'duration_ms', a.duration_ms, 'backoff_ms', a.backoff_ms) ORDER BY a.attempt)
                        FROM birthgate_ledger.apply_attempt a WHERE a.step_row_id = s.id), '[]'::jsonb) AS tries
       FROM birthgate_ledger.apply_step s WHERE s.run_id = $1 ORDER BY s.id`,
    [runId],
  );
  return { ...run.rows[0], steps: steps.rows };
}

// ── The packet lease (issue 9 item 1; sql/runner/ledger.sql `packet_lease`) ──
// Which packet workflow run owns the packet across its activities. Read and written under the packet
// advisory lock (packet/lock.ts), so a read-then-write here never races another packet entry point.

export type LeaseHolder = { workflowId: string; workflowRun: string };
export type LeaseKind = 'apply' | 'rollback';
export type PacketLease = LeaseHolder & { kind: LeaseKind; ledgerRunId: string | null; acquiredBy: string; acquiredAt: string };

export const sameHolder = (a: LeaseHolder, b: LeaseHolder) => a.workflowId === b.workflowId && a.workflowRun === b.workflowRun;

/** The lease as it is; undefined when nobody holds it (or the ledger does not exist yet). */
export async function readLease(q: Queryable): Promise<PacketLease | undefined> {
  const exists = await q.query<{ ok: boolean }>(`SELECT to_regclass('birthgate_ledger.packet_lease') IS NOT NULL AS ok`);
  if (!exists.rows[0]?.ok) return undefined;
  const r = await q.query<{ workflow_id: string; workflow_run: string; kind: LeaseKind; ledger_run_id: string | null; acquired_by: string; acquired_at: Date }>(
    `SELECT workflow_id, workflow_run, kind, ledger_run_id::text, acquired_by, acquired_at FROM birthgate_ledger.packet_lease`,
  );
  const row = r.rows[0];
  return row
    ? { workflowId: row.workflow_id, workflowRun: row.workflow_run, kind: row.kind, ledgerRunId: row.ledger_run_id, acquiredBy: row.acquired_by, acquiredAt: row.acquired_at.toISOString() }
    : undefined;
}

async function leaseEvent(q: Queryable, event: 'acquired' | 'released' | 'cleared', l: LeaseHolder & { kind: string; ledgerRunId?: string | null }, detail?: string): Promise<void> {
  await q.query(
    `INSERT INTO birthgate_ledger.packet_lease_event (event, workflow_id, workflow_run, kind, ledger_run_id, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
    [event, l.workflowId, l.workflowRun, l.kind, l.ledgerRunId ?? null, detail?.slice(0, 2000) ?? null],
  );
}

/** Take the free lease for `holder` (a no-op when it already holds it); returns the lease as it now is, whoever holds it. */
export async function takeLease(q: Queryable, holder: LeaseHolder, kind: LeaseKind): Promise<PacketLease> {
  const r = await q.query(
    `INSERT INTO birthgate_ledger.packet_lease (workflow_id, workflow_run, kind) VALUES ($1, $2, $3) ON CONFLICT (lease) DO NOTHING`,
    [holder.workflowId, holder.workflowRun, kind],
  );
  if (r.rowCount === 1) await leaseEvent(q, 'acquired', { ...holder, kind });
  return (await readLease(q))!;
}

/** Record which ledger run the holder's workflow opened (a retried first activity reuses it). */
export async function setLeaseRun(q: Queryable, holder: LeaseHolder, ledgerRunId: string): Promise<void> {
  await q.query(`UPDATE birthgate_ledger.packet_lease SET ledger_run_id = $3 WHERE workflow_id = $1 AND workflow_run = $2`, [holder.workflowId, holder.workflowRun, ledgerRunId]);
}

/** Release the lease if `holder` has it (idempotent); true when this call released it. */
export async function releaseLease(q: Queryable, holder: LeaseHolder, detail?: string): Promise<boolean> {
  const r = await q.query<{ kind: string; ledger_run_id: string | null }>(
    `DELETE FROM birthgate_ledger.packet_lease WHERE workflow_id = $1 AND workflow_run = $2 RETURNING kind, ledger_run_id::text`,
    [holder.workflowId, holder.workflowRun],
  );
  const row = r.rows[0];
  if (row) await leaseEvent(q, 'released', { ...holder, kind: row.kind, ledgerRunId: row.ledger_run_id }, detail);
  return row !== undefined;
}

/**
 * Clear a lease whose workflow run is known to be closed (terminated, timed out: it never reached its
 * own release). Its ledger run, if still 'running', is closed as failed so the ledger does not show
 * a run that will never finish.
 */
export async function clearLease(q: Queryable, lease: PacketLease, why: string): Promise<void> {
  const r = await q.query(`DELETE FROM birthgate_ledger.packet_lease WHERE workflow_id = $1 AND workflow_run = $2`, [lease.workflowId, lease.workflowRun]);
  if (r.rowCount !== 1) return;
  await leaseEvent(q, 'cleared', lease, why);
  if (lease.ledgerRunId) {
    await q.query(
      `UPDATE birthgate_ledger.apply_run SET status = 'failed', error_code = 'ABANDONED', error = $2, finished_at = clock_timestamp()
        WHERE run_id = $1 AND status = 'running'`,
      [lease.ledgerRunId, `abandoned: ${why}`.slice(0, 2000)],
    );
  }
}

/** The entry fingerprint a ledger run recorded (the workflow keeps only its hash). */
export async function runEntry(q: Queryable, runId: string): Promise<{ entry: Fingerprint; backupDir: string | null; status: RunStatus }> {
  const r = await q.query<{ entry_fingerprint: Fingerprint | null; backup_dir: string | null; status: RunStatus }>(
    'SELECT entry_fingerprint, backup_dir, status FROM birthgate_ledger.apply_run WHERE run_id = $1', [runId]);
  const row = r.rows[0];
  if (!row?.entry_fingerprint) throw new Error(`ledger run ${runId} has no entry fingerprint`);
  return { entry: row.entry_fingerprint, backupDir: row.backup_dir, status: row.status };
}

// ── Archiving the ledger (issue 9 item 4; sql/runner/ledger.sql `ledger_archive`) ──
// `world load --force` drops the estate these runs changed. Their exit fingerprints then describe a
// catalog that is gone, and every later apply would be refused as ENTRY_DRIFT against them. The reload
// archives the ledger in its own transaction: the schema is renamed whole (every table in it, whoever
// added it, keeps its rows), a fresh ledger is created whose ids continue after the archived ones (a
// run's backup directory is named after its id, so an old run's backup is never overwritten), and the
// fresh ledger records where the old one went.

export type ArchivedRun = { runId: string; kind: RunKind; status: RunStatus; targetStep: number | null; startedAt: string };
export type LedgerArchive = { schema: string; reason: string; runs: ArchivedRun[] };

/**
 * Move the ledger to a schema birthgate_ledger_archive_<timestamp> and start a fresh one; undefined
 * when there is no ledger or it records no run (nothing stale to move). The caller holds the packet
 * lock and runs this inside the transaction that replaces the estate.
 */
export async function archiveLedger(q: Queryable, reason: string): Promise<LedgerArchive | undefined> {
  const exists = await q.query<{ ok: boolean }>(`SELECT to_regclass('birthgate_ledger.apply_run') IS NOT NULL AS ok`);
  if (!exists.rows[0]?.ok) return undefined;
  const runs = await q.query<{ run_id: string; kind: RunKind; status: RunStatus; target_step: number | null; started_at: Date }>(
    'SELECT run_id::text, kind, status, target_step, started_at FROM birthgate_ledger.apply_run ORDER BY run_id');
  if (runs.rows.length === 0) return undefined;
  const last = await q.query<{ run_id: string; step_id: string | null }>(
    'SELECT (SELECT max(run_id) FROM birthgate_ledger.apply_run)::text AS run_id, (SELECT max(id) FROM birthgate_ledger.apply_step)::text AS step_id');
  const name = await q.query<{ schema: string; rename: string }>(
    `SELECT s AS schema, format('ALTER SCHEMA birthgate_ledger RENAME TO %I', s) AS rename
       FROM (SELECT 'birthgate_ledger_archive_' || to_char(clock_timestamp(), 'YYYYMMDD"_"HH24MISS"_"US') AS s) x`);
  const { schema, rename } = name.rows[0]!;
  await q.query(rename);
  await ensureLedger(q);
  await q.query(`SELECT setval(pg_get_serial_sequence('birthgate_ledger.apply_run', 'run_id'), $1::bigint)`, [last.rows[0]!.run_id]);
  if (last.rows[0]!.step_id !== null) {
    await q.query(`SELECT setval(pg_get_serial_sequence('birthgate_ledger.apply_step', 'id'), $1::bigint)`, [last.rows[0]!.step_id]);
  }
  const archived: ArchivedRun[] = runs.rows.map((r) => ({
    runId: r.run_id, kind: r.kind, status: r.status, targetStep: r.target_step, startedAt: r.started_at.toISOString(),
  }));
  await q.query('INSERT INTO birthgate_ledger.ledger_archive (archive_schema, reason, runs) VALUES ($1, $2, $3)',
    [schema, reason.slice(0, 2000), JSON.stringify(archived)]);
  return { schema, reason, runs: archived };
}

// ── Live bodies (issue 9 item 5; sql/runner/ledger.sql `live_body`) ──
// The functions steps 4 and 5 patch, as they were live just before their up (packet/live-bodies.ts).

export type LiveBody = {
  captureId: string;
  runId: string;
  step: number;
  signature: string;
  oid: string;
  owner: string;
  prosrcMd5: string;
  defMd5: string;
  definition: string;
  /** proacl as text; null is the default ACL. */
  acl: string | null;
  expectedMd5: string | null;
  patchedMd5: string | null;
  restoredRunId: string | null;
};

const liveBodyColumns = (b: string) => `${b}.capture_id::text AS "captureId", ${b}.run_id::text AS "runId", ${b}.step, ${b}.signature,
  ${b}.fn_oid::text AS oid, ${b}.owner, ${b}.prosrc_md5 AS "prosrcMd5", ${b}.def_md5 AS "defMd5", ${b}.definition, ${b}.acl,
  ${b}.expected_md5 AS "expectedMd5", ${b}.patched_md5 AS "patchedMd5", ${b}.restored_run_id::text AS "restoredRunId"`;

/** Record the function `signature` as it is live now; undefined when it does not exist (the up then refuses). */
export async function captureLiveBody(
  q: Queryable,
  c: { runId: string; stepRowId?: string; step: number; signature: string; expectedMd5?: string },
): Promise<LiveBody | undefined> {
  const r = await q.query<LiveBody>(
    `INSERT INTO birthgate_ledger.live_body (run_id, step_row_id, step, signature, fn_oid, owner, prosrc_md5, def_md5, definition, acl, expected_md5)
     SELECT $1, $2, $3, $4, p.oid::bigint, pg_get_userbyid(p.proowner), md5(p.prosrc), md5(pg_get_functiondef(p.oid)),
            pg_get_functiondef(p.oid), p.proacl::text, $5
       FROM pg_catalog.pg_proc p WHERE p.oid = to_regprocedure($4)
     RETURNING ${liveBodyColumns('live_body')}`,
    [c.runId, c.stepRowId ?? null, c.step, c.signature, c.expectedMd5 ?? null],
  );
  return r.rows[0];
}

/** The up committed: note the md5 it left, so a later reader sees which patched body came from this capture. */
export async function markLiveBodyPatched(q: Queryable, captureId: string): Promise<void> {
  await q.query(
    `UPDATE birthgate_ledger.live_body SET patched_md5 = md5(pg_get_functiondef(fn_oid::oid))
      WHERE capture_id = $1 AND EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.oid = fn_oid::oid)`,
    [captureId],
  );
}

/**
 * The newest capture of `signature` (restored or not) whose up was not refused. A refused up changed
 * nothing, and what it captured may not be an entry body at all (a patched body that drifted, which
 * the up refused as not the entry shape), so it is never the one to restore. A failed up is kept: it
 * may have committed before its verify failed (an automatic rollback then needs its capture), and
 * when it did not, its capture is still the body that was live before it.
 */
export async function latestLiveBody(q: Queryable, signature: string): Promise<LiveBody | undefined> {
  const r = await q.query<LiveBody>(
    `SELECT ${liveBodyColumns('b')}
       FROM birthgate_ledger.live_body b LEFT JOIN birthgate_ledger.apply_step s ON s.id = b.step_row_id
      WHERE b.signature = $1 AND s.status IS DISTINCT FROM 'refused'
      ORDER BY b.capture_id DESC LIMIT 1`,
    [signature],
  );
  return r.rows[0];
}

export async function markLiveBodyRestored(q: Queryable, captureId: string, runId: string): Promise<void> {
  await q.query('UPDATE birthgate_ledger.live_body SET restored_run_id = $2, restored_at = clock_timestamp() WHERE capture_id = $1', [captureId, runId]);
}

/** Every capture, oldest first (a run's, or all). */
export async function readLiveBodies(q: Queryable, runId?: string): Promise<LiveBody[]> {
  const r = await q.query<LiveBody>(
    `SELECT ${liveBodyColumns('b')} FROM birthgate_ledger.live_body b WHERE $1::bigint IS NULL OR b.run_id = $1 ORDER BY b.capture_id`,
    [runId ?? null],
  );
  return r.rows;
}
