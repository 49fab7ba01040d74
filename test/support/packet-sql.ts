// The simplest way to run the apply packet's files for SQL-level tests: each step's up.sql in
// order, each down.sql in reverse. Not the packet runner (packet/ owns backups, ledger, lock
// timeouts and retries); this only honours what the files themselves demand: a CONCURRENTLY step
// runs outside a transaction, every other step runs in one transaction, step 7 needs an approval,
// and a down with meta.downConcurrently (step 7) runs its down-precheck.sql (ok=false → BG428), then
// that file outside a transaction, then down.sql.
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { sqlRoot, readSql } from '../../db/sql-files.ts';

export type StepMeta = {
  step: number;
  title: string;
  concurrently: boolean;
  oneWay: boolean;
  requiresApproval: boolean;
  /** A file of the step folder run outside a transaction before down.sql (CONTRACT.md "Runner obligations"). */
  downConcurrently?: string;
  kb: string;
};

export type PacketStep = { dir: string; meta: StepMeta };

export type Approval = { owner: string; approvalId: string };

/** Default approval used by tests that apply past the one-way door on purpose. */
export const testApproval: Approval = { owner: 'test-owner', approvalId: 'TEST-APPROVAL-1' };

export function packetSteps(): PacketStep[] {
  const root = path.join(sqlRoot, 'apply');
  return fs
    .readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && /^\d{2}-/.test(d.name))
    .map((d) => d.name)
    .sort()
    .map((dir) => ({
      dir: path.join('apply', dir),
      meta: JSON.parse(fs.readFileSync(path.join(root, dir, 'meta.json'), 'utf8')) as StepMeta,
    }));
}

function stepFile(step: number, file: string): { sql: string; meta: StepMeta } {
  const s = packetSteps().find((p) => p.meta.step === step);
  if (!s) throw new Error(`no packet step ${step}`);
  return { sql: readSql(path.join(s.dir, file)), meta: s.meta };
}

async function runFile(pool: pg.Pool, sql: string, meta: StepMeta, approval?: Approval): Promise<void> {
  const client = await pool.connect();
  try {
    if (meta.concurrently) {
      await client.query(sql); // one statement, autocommit: CONCURRENTLY refuses a transaction block
      return;
    }
    await client.query('BEGIN');
    try {
      if (approval) {
        await client.query(
          `SELECT set_config('birthgate.approval_owner', $1, true), set_config('birthgate.approval_id', $2, true)`,
          [approval.owner, approval.approvalId],
        );
      }
      await client.query(sql);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    }
  } finally {
    client.release();
  }
}

export async function applyStep(pool: pg.Pool, step: number, approval?: Approval): Promise<void> {
  const { sql, meta } = stepFile(step, 'up.sql');
  await runFile(pool, sql, meta, meta.requiresApproval ? approval : undefined);
}

export async function rollbackStep(pool: pg.Pool, step: number): Promise<void> {
  const { sql, meta } = stepFile(step, 'down.sql');
  if (meta.downConcurrently) {
    // The precheck guards the online build: the refusal comes as BG428 naming the codes, not as a unique violation.
    const pre = await pool.query<{ ok: boolean; detail: string }>(stepFile(step, 'down-precheck.sql').sql);
    if (!pre.rows[0]?.ok) throw Object.assign(new Error(pre.rows[0]?.detail ?? 'down-precheck.sql returned no row'), { code: 'BG428' });
    await runFile(pool, stepFile(step, meta.downConcurrently).sql, { ...meta, concurrently: true });
  }
  await runFile(pool, sql, meta);
}

export async function verifyStep(pool: pg.Pool, step: number): Promise<{ ok: boolean; detail: string }> {
  const { sql } = stepFile(step, 'verify.sql');
  const r = await pool.query<{ ok: boolean; detail: string }>(sql);
  const row = r.rows[0];
  if (!row) throw new Error(`verify of step ${step} returned no row`);
  return row;
}

/** Apply steps 1..through in order; steps at or past the one-way door get the test approval. */
export async function applyStepsSql(pool: pg.Pool, through: number, approval: Approval = testApproval): Promise<void> {
  for (const s of packetSteps()) {
    if (s.meta.step > through) break;
    await applyStep(pool, s.meta.step, approval);
  }
}

/** Roll back every step above `to`, in reverse order (to = 0 returns to the entry state). */
export async function rollbackStepsSql(pool: pg.Pool, to: number, from = Number.MAX_SAFE_INTEGER): Promise<void> {
  const steps = packetSteps().filter((s) => s.meta.step > to && s.meta.step <= from).reverse();
  for (const s of steps) await rollbackStep(pool, s.meta.step);
}

export async function catalogFingerprint(q: Pick<pg.Pool | pg.PoolClient, 'query'>): Promise<Record<string, unknown>> {
  const r = await q.query<{ fingerprint: Record<string, unknown> }>(readSql('probes/catalog_fingerprint.sql'));
  return r.rows[0]!.fingerprint;
}
