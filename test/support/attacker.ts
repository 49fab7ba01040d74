// Helpers for test/security-attacks.test.ts: sessions that act as one role (the estate owner directus,
// the worker, an operator), the attack payloads they plant, and the drift-watch reads the tests assert on.
import assert from 'node:assert/strict';
import pg from 'pg';
import { workerUrl } from './packet-world.ts';

type Q = Pick<pg.Pool | pg.PoolClient | pg.Client, 'query'>;

/** A dedicated session whose notices (RAISE WARNING of a planted payload) are kept. */
export type Session = { c: pg.Client; notices: string[]; end(): Promise<void> };

async function session(url: string, setup?: (c: pg.Client) => Promise<void>): Promise<Session> {
  const c = new pg.Client({ connectionString: url, application_name: 'test-attacker' });
  const notices: string[] = [];
  c.on('notice', (n: { message?: string }) => notices.push(n.message ?? ''));
  // A FORCE drop of the database at teardown may end an idle session; that is not a test failure.
  c.on('error', () => undefined);
  await c.connect();
  if (setup) await setup(c);
  return { c, notices, end: () => c.end().catch(() => undefined) };
}

/**
 * The estate owner. `directus` is NOLOGIN in the baseline, so a superuser connection becomes it with
 * SET SESSION AUTHORIZATION: session_user and current_user are both directus from then on, and every
 * statement runs with directus's rights only.
 */
export async function asDirectus(superUrl: string): Promise<Session> {
  return session(superUrl, async (c) => {
    await c.query('SET SESSION AUTHORIZATION directus');
    const r = await c.query<{ s: string; u: string; sup: boolean }>(
      `SELECT session_user AS s, current_user AS u, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS sup`);
    assert.deepEqual(r.rows[0], { s: 'directus', u: 'directus', sup: false }, 'the attacker session is directus, no superuser');
  });
}

export async function asWorker(superUrl: string): Promise<Session> {
  return session(workerUrl(superUrl));
}

export async function asSuperuser(superUrl: string): Promise<Session> {
  return session(superUrl);
}

/** The notices a planted payload raised: `bg-attack[<where>] as <role>: alter-role=<sqlstate|ok> permit-write=<sqlstate|ok>`. */
export const attackNotices = (s: Session): string[] => s.notices.filter((n) => n.startsWith('bg-attack['));

/**
 * The body of a plpgsql payload that tries to escalate: make directus a superuser and finalize every
 * RESERVED permit. Each attempt is caught so the payload reports, in one WARNING, which role it ran
 * as and what each attempt got (SQLSTATE, or ok). Declares `r text` for the caller's RETURN.
 */
export function payloadBody(where: string): string {
  return `DECLARE r text := format('bg-attack[%s] as %s:', ${pg.escapeLiteral(where)}, current_user);
BEGIN
  BEGIN EXECUTE 'ALTER ROLE directus SUPERUSER'; r := r || ' alter-role=ok';
  EXCEPTION WHEN OTHERS THEN r := r || ' alter-role=' || SQLSTATE; END;
  BEGIN UPDATE public.birth_admission_permit SET state = 'FINALIZED' WHERE state = 'RESERVED'; r := r || ' permit-write=ok';
  EXCEPTION WHEN OTHERS THEN r := r || ' permit-write=' || SQLSTATE; END;
  RAISE WARNING '%', r;`;
}

export async function isSuperuser(q: Q, role: string): Promise<boolean> {
  const r = await q.query<{ s: boolean }>(`SELECT rolsuper AS s FROM pg_roles WHERE rolname = $1`, [role]);
  return r.rows[0]!.s;
}

/** Safety net for a cluster shared by other test files: directus must never stay a superuser. */
export async function demoteDirectus(q: Q): Promise<boolean> {
  if (!(await isSuperuser(q, 'directus'))) return false;
  await q.query('ALTER ROLE directus NOSUPERUSER');
  return true;
}

export type Finding = { dim: string; block_count: string | null; detail: string; hard: boolean };

/** One drift tick (the drift-watch Schedule's activity): the non-zero or uncomputed dims. */
export async function tick(q: Q): Promise<Finding[]> {
  return (await q.query<Finding>('SELECT dim, block_count::text, detail, hard FROM fn_drift_tick() ORDER BY dim')).rows;
}

export const tickDims = async (q: Q): Promise<string[]> => (await tick(q)).map((f) => f.dim);

export type Blocker = { kind: string; detail: string; hard: boolean };

export async function preflightBlockers(q: Q, code: string): Promise<Blocker[]> {
  const r = await q.query<{ b: Blocker[] }>(`SELECT fn_admission_preflight($1, 'dot_tools') -> 'blockers' AS b`, [code]);
  return r.rows[0]!.b;
}

export async function driftKinds(q: Q): Promise<Array<{ kind: string; name: string; drift: string }>> {
  return (await q.query<{ kind: string; name: string; drift: string }>(
    'SELECT kind, name, drift FROM fn_drift_check() ORDER BY kind, name, drift')).rows;
}

export async function permitRow(q: Q, permitId: string): Promise<{ state: string; row_id: string | null; birth_id: string | null }> {
  const r = await q.query<{ state: string; row_id: string | null; birth_id: string | null }>(
    `SELECT state, row_id::text, birth_id::text FROM birth_admission_permit WHERE permit_id = $1`, [permitId]);
  return r.rows[0]!;
}

export async function dotRows(q: Q, code: string): Promise<number> {
  return (await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM dot_tools WHERE code::text = $1`, [code])).rows[0]!.n;
}

/** Run fn in BEGIN … and always ROLLBACK: the state an attack builds is never committed. */
export async function inRolledBackTxn<T>(c: pg.Client | pg.PoolClient, fn: () => Promise<T>): Promise<T> {
  await c.query('BEGIN');
  try {
    return await fn();
  } finally {
    await c.query('ROLLBACK');
  }
}

/** A statement's outcome without throwing: 'ok' or the SQLSTATE and message. */
export async function outcome(p: Promise<unknown>): Promise<{ ok: true } | { ok: false; code: string; message: string }> {
  try {
    await p;
    return { ok: true };
  } catch (err) {
    const e = err as pg.DatabaseError;
    return { ok: false, code: e.code ?? '?', message: e.message };
  }
}

/** The admission's triggers on dot_tools, found by their functions (their names are the packet's to choose). */
export type GateTriggers = { gate: string; consume: string; finalize: string; guards: string[] };

export async function gateTriggers(q: Q): Promise<GateTriggers> {
  const r = await q.query<{ tgname: string; fn: string }>(
    `SELECT t.tgname, p.proname AS fn FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE t.tgrelid = 'public.dot_tools'::regclass AND NOT t.tgisinternal
        AND p.proname IN ('fn_dot_tools_permit_gate', 'fn_dot_tools_permit_consume', 'fn_dt_finalize', 'fn_dot_tools_row_guard')
      ORDER BY t.tgname`);
  const one = (fn: string): string => {
    const names = r.rows.filter((x) => x.fn === fn).map((x) => x.tgname);
    assert.equal(names.length, 1, `one trigger on dot_tools runs ${fn}: ${names.join(', ')}`);
    return names[0]!;
  };
  return {
    gate: one('fn_dot_tools_permit_gate'),
    consume: one('fn_dot_tools_permit_consume'),
    finalize: one('fn_dt_finalize'),
    guards: r.rows.filter((x) => x.fn === 'fn_dot_tools_row_guard').map((x) => x.tgname),
  };
}

/** ALTER TABLE dot_tools DISABLE / ENABLE ALWAYS TRIGGER for each named trigger, in one statement. */
export function alterTriggers(action: 'DISABLE' | 'ENABLE ALWAYS', names: string[]): string {
  return `ALTER TABLE public.dot_tools ${names.map((n) => `${action} TRIGGER ${pg.escapeIdentifier(n)}`).join(', ')}`;
}

/**
 * Repair after a superuser bypass test: remove the ungated rows and their births. The row guards are
 * ENABLE ALWAYS (replica mode does not skip them), so they are disabled inside the repair transaction.
 */
export async function superuserRemoveRows(pool: pg.Pool, codes: string[]): Promise<void> {
  const c = await pool.connect();
  try {
    const { guards } = await gateTriggers(c);
    await c.query('BEGIN');
    await c.query(alterTriggers('DISABLE', guards));
    await c.query(`DELETE FROM dot_tools WHERE code::text = ANY($1)`, [codes]);
    await c.query(alterTriggers('ENABLE ALWAYS', guards));
    await c.query(`DELETE FROM birth_registry WHERE collection_name = 'dot_tools' AND entity_code = ANY($1)`, [codes]);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

/** One attack step inside a SAVEPOINT of the open transaction: its outcome, the transaction still usable after a refusal. */
export async function step(c: pg.Client | pg.PoolClient, sql: string, params: unknown[] = []): Promise<{ ok: true } | { ok: false; code: string; message: string }> {
  await c.query('SAVEPOINT bg_attack_step');
  const r = await outcome(c.query(sql, params));
  await c.query(r.ok ? 'RELEASE SAVEPOINT bg_attack_step' : 'ROLLBACK TO SAVEPOINT bg_attack_step');
  return r;
}
