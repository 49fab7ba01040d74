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
         FROM birthgate_ledger.apply_run WHERE exit_hash IS NOT NULL
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
