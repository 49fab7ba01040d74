// Issue 9 item 6: the rehearsal runs on a clone, so the live estate sees at most ACCESS SHARE.
// Measured before: the packet rehearsed on the live tables built the composite index under SHARE and
// promoted it under ACCESS EXCLUSIVE until the ROLLBACK, and a plain birth_registry insert waited 6.9 s.
//
// The clone is schema public itself, rebuilt inside the rehearsal's transaction: the live schema is
// renamed (a pg_namespace row version no other session ever sees: they keep resolving "public" to the
// live objects, and no relation is locked by it), a new schema public is created, and every table (with
// all its rows), sequence, function, view, constraint, index and trigger is re-created in it from the
// live definitions (clone-plan.sql), with the same owners and privileges. Why not a side schema or
// pg_temp with the packet's SQL rewritten: functions are never looked up in pg_temp, the estate's
// bodies call each other and name tables unqualified, and the packet's files (steps 4/5 derive their
// patch from the live definition text, verify.sql reads the catalog by schema name, 'public' is also
// the role PUBLIC) would need a rewrite that silently misses a case. Under the live schema's own name the
// packet, its verifies, the test plan and the fingerprint probe run byte for byte as they would live, and
// a function's pg_get_functiondef — hence the md5 steps 4/5 check — is the live one's.
// What still reaches a live object is by OID only (the copy's reads); rehearsal/live-locks.ts proves the
// strongest lock each got. Everything is undone by the rehearsal's ROLLBACK; nothing here commits.
//
// Data: a complete copy of every table, decided by cost. On the prod world that is 2.3M rows in 93
// tables (~850 MB with the 178 indexes, on disk until the ROLLBACK drops the files) and 25–60 s on the
// 2-core test machine; bench/packet.ts (c) measures it and a concurrent writer's stalls. The
// composite build's lock window has to be measured at full size; the fingerprint the clone must match
// counts birth_registry and dot_tools; the orphan and phantom BLOCK dims the plan checks compare every
// governed row with its birth — a sample would change the very figures under test. The estate's tables
// are cloned UNLOGGED: no WAL for rows that are always rolled back.
//
// Built by a superuser from code the estate owner wrote: clone-plan.sql's header says why none of it
// ever runs with the superuser's rights. The live event triggers are paused while the clone is built
// (uncommitted, like everything here) and fire on the steps' DDL afterwards, as in the apply.
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { projectRoot } from '../config/index.ts';
import { messageOf, sqlstateOf } from '../packet/errors.ts';
import { diffFingerprints, fingerprintHash, type Fingerprint, type FingerprintDiff } from '../packet/fingerprint.ts';
import type { PacketStep } from '../packet/steps.ts';

const PLAN_SQL = fs.readFileSync(path.join(projectRoot, 'rehearsal', 'clone-plan.sql'), 'utf8');

type PlanRow = { phase: number; ord: string; what: string; sql: string | null };

/** The clone could not be built as an exact copy: nothing was rehearsed. */
export class CloneRefused extends Error {
  override name = 'CloneRefused';
}

export type CloneSummary = {
  /** What the live schema is called inside the rehearsal's transaction (only there). */
  liveSchema: string;
  tables: number;
  unloggedTables: number;
  rows: number;
  sequences: number;
  functions: number;
  views: number;
  constraints: number;
  indexes: number;
  triggers: number;
  eventTriggersPaused: string[];
  /** Milliseconds per part: definitions read, structure, rows copied, keys and indexes built, analyze. */
  ms: { read: number; structure: number; rows: number; keysAndIndexes: number; triggersAndPrivileges: number; analyze: number; total: number };
};

export type CloneFidelity = { equal: boolean; cloneHash: string; liveHash: string; diff: FingerprintDiff[] };

/** The tables the packet's own steps create: cloned as ordinary tables (clone-plan.sql, $2). */
export function packetTables(steps: PacketStep[]): string[] {
  const names = new Set<string>();
  for (const s of steps) for (const m of s.up.matchAll(/\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?public\.([a-z_][a-z0-9_]*)/gi)) names.add(m[1]!);
  return [...names].sort();
}

const PHASES: Array<[keyof Omit<CloneSummary['ms'], 'total'>, (p: number) => boolean]> = [
  ['structure', (p) => p < 60],
  ['rows', (p) => p >= 60 && p < 70],
  ['keysAndIndexes', (p) => p >= 70 && p < 80],
  ['triggersAndPrivileges', (p) => p >= 80 && p < 95],
  ['analyze', (p) => p >= 95],
];

/**
 * Build the clone on `c`, inside its open transaction. Throws CloneRefused (nothing built that
 * matters: the caller rolls back) when the live schema holds something the clone cannot reproduce.
 */
export async function buildClone(c: pg.PoolClient, opts: { steps: PacketStep[]; say: (l: string) => void }): Promise<CloneSummary> {
  const t0 = performance.now();
  const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const liveSchema = `bg_rehearsal_live_${pid}`;
  const path0 = (await c.query<{ p: string }>(`SELECT current_setting('search_path') AS p`)).rows[0]!.p;
  // Qualified names in every pg_get_*def: read, and executed, with nothing but pg_catalog on the path
  // (as pg_restore does: an unqualified built-in never resolves to a look-alike the estate owner made).
  await c.query(`SELECT set_config('search_path', 'pg_catalog', true)`);
  const plan = (await c.query<PlanRow>(PLAN_SQL, [liveSchema, packetTables(opts.steps)])).rows;
  const tRead = performance.now();

  const refused = plan.filter((r) => r.phase === 0);
  if (refused.length) {
    throw new CloneRefused(`schema public holds what the rehearsal's clone does not reproduce, so nothing was rehearsed: ${refused.map((r) => r.what).join('; ')}`);
  }
  const ms = { read: tRead - t0, structure: 0, rows: 0, keysAndIndexes: 0, triggersAndPrivileges: 0, analyze: 0, total: 0 };
  const count = (phase: number, prefix = '') => plan.filter((r) => r.phase === phase && r.what.startsWith(prefix)).length;

  // Bodies are checked where they were created; the clone's 178 index builds sort in memory rather
  // than through temp files (restored before the steps: the composite build is measured as configured).
  const saved = (await c.query<{ b: string; m: string }>(`SELECT current_setting('check_function_bodies') AS b, current_setting('maintenance_work_mem') AS m`)).rows[0]!;
  await c.query(`SELECT set_config('check_function_bodies', 'off', true),
                        set_config('maintenance_work_mem', CASE WHEN pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes('256MB')
                                                                THEN '256MB' ELSE current_setting('maintenance_work_mem') END, true)`);
  let rows = 0;
  const todo = plan.filter((r) => r.phase > 0);
  let i = 0;
  while (i < todo.length) {
    const phase = todo[i]!.phase;
    const batch: PlanRow[] = [];
    while (i < todo.length && todo[i]!.phase === phase) batch.push(todo[i++]!);
    const tp = performance.now();
    if (phase === 40) await defineInRounds(c, batch);
    else {
      for (const r of batch) {
        try {
          const res = await one(c, r.sql!);
          if (phase === 60) rows += res.rowCount ?? 0;
        } catch (err) {
          throw new CloneRefused(`clone: ${r.what} failed: ${`${sqlstateOf(err) ?? ''} ${messageOf(err)}`.trim()}`);
        }
      }
    }
    const [part] = PHASES.find(([, f]) => f(phase))!;
    ms[part] += performance.now() - tp;
    if (phase === 60) opts.say(`clone: ${rows.toLocaleString('en-US')} rows copied in ${Math.round(ms.rows)} ms`);
  }
  await c.query(`SELECT set_config('check_function_bodies', $1, true), set_config('maintenance_work_mem', $2, true), set_config('search_path', $3, true)`,
    [saved.b, saved.m, path0]);
  ms.total = performance.now() - t0;
  const summary: CloneSummary = {
    liveSchema,
    tables: count(30),
    unloggedTables: plan.filter((r) => r.phase === 30 && /^CREATE UNLOGGED/.test(r.sql!)).length,
    rows,
    sequences: count(20) + count(31),
    functions: count(40, 'function '),
    views: count(40, 'view '),
    constraints: count(70),
    // Keys ('1…' in clone-plan.sql's order) build an index each; checks and foreign keys do not.
    indexes: plan.filter((r) => r.phase === 70 && r.ord.startsWith('1')).length + count(75),
    triggers: count(80),
    eventTriggersPaused: plan.filter((r) => r.phase === 1).map((r) => r.ord),
    ms: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, Math.round(v)])) as CloneSummary['ms'],
  };
  opts.say(`clone: ${summary.tables} tables, ${summary.functions} functions, ${summary.views} views, ${summary.indexes} indexes, ${summary.triggers} triggers in ${summary.ms.total} ms`);
  return summary;
}

/** One statement, never more: the extended protocol refuses a text that holds two. */
const one = (c: pg.PoolClient, sql: string) => c.query({ text: sql, queryMode: 'extended' } as pg.QueryConfig);

/**
 * Functions and views depend on each other both ways (a view calls a function, a function returns a
 * view's row type): each round creates what it can, each statement under a savepoint; a round that
 * creates nothing ends it, loudly.
 */
async function defineInRounds(c: pg.PoolClient, batch: PlanRow[]): Promise<void> {
  let pending = batch;
  while (pending.length) {
    const failed: Array<{ r: PlanRow; err: string }> = [];
    for (const r of pending) {
      await c.query('SAVEPOINT clone_define');
      try {
        await one(c, r.sql!);
        await c.query('RELEASE SAVEPOINT clone_define');
      } catch (err) {
        await c.query('ROLLBACK TO SAVEPOINT clone_define');
        failed.push({ r, err: `${sqlstateOf(err) ?? ''} ${messageOf(err)}`.trim() });
      }
    }
    if (failed.length === pending.length) {
      throw new CloneRefused(`clone: could not create ${failed.map((f) => `${f.r.what} (${f.err})`).join('; ')}`);
    }
    pending = failed.map((f) => f.r);
  }
}

/**
 * The clone is exact: its catalog fingerprint (sql/probes/catalog_fingerprint.sql, read inside the
 * transaction, where "public" is the clone) equals the live entry fingerprint — function bodies and
 * md5s, constraints, indexes, triggers with their enabled state, columns, views, owners, privileges,
 * config rows, row counts — except what cannot be equal: the functions' OIDs (new objects), and the
 * live event triggers' function names, which inside the transaction carry the live schema's temporary
 * name (event triggers are database-wide: the live ones fire here as they would in the apply).
 */
export function cloneFidelity(live: Fingerprint, clone: Fingerprint, liveSchema: string): CloneFidelity {
  const norm = (fp: Fingerprint) => {
    const functions = Object.fromEntries(Object.entries(fp.functions).map(([k, v]) => [k, { md5: v.md5 }]));
    const events = JSON.parse(JSON.stringify(fp.event_triggers).replaceAll(`${liveSchema}.`, '')) as unknown;
    return { ...fp, functions, event_triggers: events };
  };
  const a = norm(live);
  const b = norm(clone);
  const liveHash = fingerprintHash(a);
  const cloneHash = fingerprintHash(b);
  return { equal: liveHash === cloneHash, liveHash, cloneHash, diff: liveHash === cloneHash ? [] : diffFingerprints(a, b) };
}
