// A step's verify.sql (CONTRACT.md: one row `(ok boolean, detail text)`); sqitch's verify.
import type pg from 'pg';
import type { PacketStep } from './steps.ts';

export type VerifyResult = { ok: boolean; detail: string };

export async function verifyStepSql(q: Pick<pg.Pool, 'query'>, step: PacketStep): Promise<VerifyResult> {
  const r = await q.query<{ ok: boolean | null; detail: string | null }>(step.verify);
  const row = Array.isArray(r) ? undefined : r.rows[0];
  if (!row) throw new Error(`verify.sql of step ${step.step} must return one row (ok, detail)`);
  return { ok: row.ok === true, detail: row.detail ?? '' };
}
