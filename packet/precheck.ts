// A step's down-precheck.sql (CONTRACT.md "Runner obligations"): one row `(ok boolean, detail text)`,
// read-only, the shape of verify.sql. It says whether the step's down would be refused. Issue 7
// item 7 (KB-7D57 step 7, BG428): `rollback --to N` runs the precheck of every down it will run
// before the first down runs, so a refusal leaves the estate whole instead of half rolled back.
import type pg from 'pg';
import { z } from 'zod';
import type { DdlOptions } from './ddl.ts';
import type { PacketStep } from './steps.ts';

const PrecheckRow = z.object({ ok: z.boolean().nullable(), detail: z.string().nullable() });

export type PrecheckResult = { step: number; ok: boolean; detail: string };

export type PrecheckOptions = Pick<DdlOptions, 'lockTimeoutMs' | 'statementTimeoutMs'> & {
  /**
   * The steps whose downs the rollback will run (`birthgate.rollback_steps`, transaction-local).
   * A precheck judges the state its down will meet, after the downs of the higher steps in that
   * list (step 7's discounts the pivot births step 8's down deletes). Omitted: the state as it is.
   */
  plan?: readonly number[];
};

const Plan = z.array(z.number().int().min(1).max(99));

/**
 * Run one step's down-precheck.sql; undefined when the step has none. In a READ ONLY transaction
 * (so a precheck that writes fails instead of changing anything), under the runner's timeouts, and
 * always rolled back.
 */
export async function runDownPrecheck(pool: pg.Pool, step: PacketStep, opts: PrecheckOptions): Promise<PrecheckResult | undefined> {
  if (step.downPrecheck === undefined) return undefined;
  const plan = Plan.parse(opts.plan ?? []).join(',');
  const c = await pool.connect();
  let broken = false;
  try {
    await c.query('BEGIN READ ONLY');
    try {
      await c.query(
        `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), set_config('birthgate.rollback_steps', $3, true)`,
        [`${opts.lockTimeoutMs}ms`, `${opts.statementTimeoutMs}ms`, plan],
      );
      const r = await c.query(step.downPrecheck);
      const row = PrecheckRow.safeParse(Array.isArray(r) ? undefined : r.rows[0]);
      if (!row.success) throw new Error(`down-precheck.sql of step ${step.step} must return one row (ok boolean, detail text)`);
      return { step: step.step, ok: row.data.ok === true, detail: row.data.detail ?? '' };
    } finally {
      await c.query('ROLLBACK').catch(() => (broken = true));
    }
  } finally {
    c.release(broken);
  }
}
