// One DDL file, run the pgroll way: its own lock_timeout (0.5–3 s) and statement_timeout, retried
// with exponential backoff + jitter when the lock wait times out (SQLSTATE 55P03), each try reported.
// A CONCURRENTLY file runs outside a transaction (Postgres refuses it inside one, KB-7D57 step 2);
// an interrupted CREATE INDEX CONCURRENTLY leaves an INVALID index behind, which is dropped
// (DROP INDEX CONCURRENTLY IF EXISTS) before the next try and after the last; a build that reports
// success is checked for indisvalid too. runDdlAfterConcurrent runs a down in two parts (KB-7D57
// step 7): the CONCURRENTLY build outside a transaction, then the transactional file that promotes
// it; when the second part fails, the index the first built is dropped again, so a failed down
// leaves the step as it found it.
import type pg from 'pg';
import { z } from 'zod';
import { sqlstateOf, messageOf } from './errors.ts';

export const LOCK_NOT_AVAILABLE = '55P03';

export const DdlOptionsSchema = z.object({
  /** issue 3: "lock_timeout (in the 0.5–3 s range)". */
  lockTimeoutMs: z.number().int().min(500).max(3000).default(1000),
  statementTimeoutMs: z.number().int().min(1000).max(6 * 3600_000).default(120_000),
  /** CREATE INDEX CONCURRENTLY on 1.12M rows reads the table twice; it gets a longer budget. */
  concurrentStatementTimeoutMs: z.number().int().min(1000).max(6 * 3600_000).default(1800_000),
  maxAttempts: z.number().int().min(1).max(20).default(6),
  backoffBaseMs: z.number().int().min(1).max(60_000).default(250),
  backoffMaxMs: z.number().int().min(1).max(300_000).default(8000),
});
export type DdlOptions = z.infer<typeof DdlOptionsSchema>;

export type DdlAttempt = { attempt: number; ok: boolean; sqlstate?: string; message?: string; durationMs: number; backoffMs?: number };

export type DdlHooks = {
  onAttempt?: (a: DdlAttempt) => Promise<void> | void;
  onLeftoverDropped?: (index: string) => Promise<void> | void;
  onNotice?: (message: string) => void;
  /** Transaction-local settings for the file, e.g. the step-7 approval (set_config(name, value, true)). */
  settings?: Record<string, string>;
  random?: () => number;
};

export class DdlFailure extends Error {
  override name = 'DdlFailure';
  constructor(message: string, readonly attempts: number, readonly sqlstate: string | undefined, cause: unknown) {
    super(message, { cause });
  }
}

/** Exponential backoff with "equal jitter": half fixed, half random, so retries spread out. */
export function backoffMs(attempt: number, o: Pick<DdlOptions, 'backoffBaseMs' | 'backoffMaxMs'>, random = Math.random): number {
  const ceiling = Math.min(o.backoffMaxMs, o.backoffBaseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The index a CREATE INDEX CONCURRENTLY file builds (comments stripped first), if any. */
export function concurrentIndexName(sql: string): string | undefined {
  const code = sql.replace(/--[^\n]*/g, ' ');
  const m = /create\s+(?:unique\s+)?index\s+concurrently\s+(?:if\s+not\s+exists\s+)?("?)([A-Za-z_][A-Za-z0-9_$]*)\1/i.exec(code);
  return m?.[2];
}

/** An INVALID index of that name in public (the leftover of an interrupted concurrent build)? */
export async function isInvalidIndex(q: Pick<pg.Pool, 'query'>, index: string): Promise<boolean> {
  const r = await q.query<{ invalid: boolean }>(
    `SELECT NOT i.indisvalid AS invalid FROM pg_index i WHERE i.indexrelid = to_regclass(format('public.%I', $1::text))`,
    [index],
  );
  return r.rows[0]?.invalid === true;
}

/** An index of that name in public that no constraint uses (built, not yet promoted by ADD CONSTRAINT … USING INDEX)? */
export async function isUnattachedIndex(q: Pick<pg.Pool, 'query'>, index: string): Promise<boolean> {
  const r = await q.query<{ unattached: boolean }>(
    `SELECT NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS unattached
       FROM pg_index i WHERE i.indexrelid = to_regclass(format('public.%I', $1::text))`,
    [index],
  );
  return r.rows[0]?.unattached === true;
}

async function dropIndexConcurrently(pool: pg.Pool, index: string, o: DdlOptions, hooks: DdlHooks): Promise<void> {
  // format('%I') builds the statement server-side; the drop gets the same lock_timeout, one try per
  // attempt of the build (the caller's loop is the retry).
  const stmt = await pool.query<{ sql: string }>(`SELECT format('DROP INDEX CONCURRENTLY IF EXISTS public.%I', $1::text) AS sql`, [index]);
  await runOnce(pool, stmt.rows[0]!.sql, true, o, {});
  await hooks.onLeftoverDropped?.(index);
}

async function dropLeftover(pool: pg.Pool, index: string, o: DdlOptions, hooks: DdlHooks): Promise<void> {
  if (await isInvalidIndex(pool, index)) await dropIndexConcurrently(pool, index, o, hooks);
}

/** A CONCURRENTLY build that returned without error but left its index INVALID: treated as a failed try. */
class InvalidAfterBuild extends Error {
  override name = 'InvalidAfterBuild';
  constructor(readonly index: string) {
    super(`index ${index} is INVALID after its CONCURRENTLY build`);
  }
}

async function runOnce(pool: pg.Pool, sql: string, concurrently: boolean, o: DdlOptions, hooks: DdlHooks): Promise<void> {
  const client = await pool.connect();
  const notice = (m: { message?: string }) => m.message && hooks.onNotice?.(m.message);
  client.on('notice', notice);
  let broken = false;
  try {
    if (concurrently) {
      // Session-level: no transaction may surround the statement. RESET below before the client goes back.
      await client.query(`SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)`, [
        `${o.lockTimeoutMs}ms`, `${o.concurrentStatementTimeoutMs}ms`,
      ]);
      try {
        await client.query(sql);
      } finally {
        await client.query('RESET lock_timeout; RESET statement_timeout').catch(() => (broken = true));
      }
      return;
    }
    await client.query('BEGIN');
    try {
      await client.query(`SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`, [
        `${o.lockTimeoutMs}ms`, `${o.statementTimeoutMs}ms`,
      ]);
      for (const [name, value] of Object.entries(hooks.settings ?? {})) {
        await client.query('SELECT set_config($1, $2, true)', [name, value]);
      }
      await client.query(sql);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    }
  } finally {
    client.off('notice', notice);
    client.release(broken);
  }
}

/**
 * Run one file with lock discipline; returns how many attempts it took. Retries only 55P03: any
 * other error is a real failure, and retrying it would only repeat it.
 */
export async function runDdl(pool: pg.Pool, sql: string, concurrently: boolean, options: DdlOptions, hooks: DdlHooks = {}): Promise<number> {
  const random = hooks.random ?? Math.random;
  const index = concurrently ? concurrentIndexName(sql) : undefined;
  for (let attempt = 1; ; attempt++) {
    const started = performance.now();
    try {
      // A leftover of an interrupted concurrent build: IF NOT EXISTS would keep it, so it goes first.
      if (index) await dropLeftover(pool, index, options, hooks);
      await runOnce(pool, sql, concurrently, options, hooks);
      if (index && (await isInvalidIndex(pool, index))) throw new InvalidAfterBuild(index);
      await hooks.onAttempt?.({ attempt, ok: true, durationMs: performance.now() - started });
      return attempt;
    } catch (err) {
      const sqlstate = sqlstateOf(err);
      const retry = (sqlstate === LOCK_NOT_AVAILABLE || err instanceof InvalidAfterBuild) && attempt < options.maxAttempts;
      const wait = retry ? backoffMs(attempt, options, random) : undefined;
      await hooks.onAttempt?.({ attempt, ok: false, sqlstate, message: messageOf(err), durationMs: performance.now() - started, backoffMs: wait });
      if (!retry) {
        let leftover = '';
        if (index) {
          await dropLeftover(pool, index, options, hooks).catch((dropErr: unknown) => {
            leftover = `; the INVALID leftover index ${index} could not be dropped yet (${messageOf(dropErr)}): the next run drops it`;
          });
        }
        const why = sqlstate === LOCK_NOT_AVAILABLE ? `lock not available after ${attempt} attempt(s) (lock_timeout ${options.lockTimeoutMs} ms)` : messageOf(err);
        throw new DdlFailure(`${why}${leftover}`, attempt, sqlstate, err);
      }
      await sleep(wait!);
    }
  }
}

/** Attempt numbers go on across the parts of one file pair: the ledger keys attempts by (step row, attempt). */
function offsetAttempts(hooks: DdlHooks, offset: number): DdlHooks {
  return { ...hooks, onAttempt: hooks.onAttempt && ((a) => hooks.onAttempt!({ ...a, attempt: a.attempt + offset })) };
}

/**
 * A down in two parts (meta.downConcurrently, KB-7D57 step 7): `concurrentSql` (one CREATE [UNIQUE]
 * INDEX CONCURRENTLY, INVALID leftovers handled by runDdl) outside a transaction, then `sql` in one
 * transaction. If the transactional part fails, the index the first part built is dropped again
 * (only while no constraint uses it): a bare unique index would enforce the rollback's rule on a
 * step that is still applied. Returns the attempts of both parts together.
 */
export async function runDdlAfterConcurrent(pool: pg.Pool, concurrentSql: string, sql: string, options: DdlOptions, hooks: DdlHooks = {}): Promise<number> {
  const built = await runDdl(pool, concurrentSql, true, options, hooks);
  try {
    return built + (await runDdl(pool, sql, false, options, offsetAttempts(hooks, built)));
  } catch (err) {
    const index = concurrentIndexName(concurrentSql);
    if (!index || !(await isUnattachedIndex(pool, index).catch(() => false))) throw err;
    const f = err instanceof DdlFailure ? err : new DdlFailure(messageOf(err), built, sqlstateOf(err), err);
    const note = await dropIndexConcurrently(pool, index, options, hooks).then(
      () => `; the index ${index} built for it was dropped again`,
      (dropErr: unknown) => `; the index ${index} built for it could not be dropped yet (${messageOf(dropErr)}): the next rollback of this step completes it`,
    );
    throw new DdlFailure(`${f.message}${note}`, built + f.attempts, f.sqlstate, f.cause ?? err);
  }
}
