// Issue 9 item 6: the strongest lock the rehearsal took on each live object, proven two ways.
//  - Its own backend's pg_locks, read after the clone is built, after every step and after every plan
//    line, before any savepoint is rolled back (a rolled-back savepoint releases the locks taken in
//    it): a live object held in anything stronger than ACCESS SHARE fails that step or line at once,
//    loudly, instead of being left to block the estate until the ROLLBACK.
//  - pg_locks sampled from another session every SAMPLE_MS for the whole run, which also sees a lock
//    taken and released inside a step (a plpgsql exception block), and every session that waited on
//    the rehearsal's backend (pg_blocking_pids): writers the rehearsal stopped, named.
// Live objects are the relations and functions of schema public as read before the clone renamed it,
// by OID; plus the system catalogs, reported when held in more than ROW EXCLUSIVE (step 1's CREATE
// ROLE serialises role DDL across the cluster until the ROLLBACK — not births).
import type pg from 'pg';

/** PostgreSQL's table lock modes, weakest first (docs "Table-Level Locks"). */
export const LOCK_MODES = [
  'AccessShareLock', 'RowShareLock', 'RowExclusiveLock', 'ShareUpdateExclusiveLock',
  'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock',
] as const;
export const lockRank = (mode: string) => LOCK_MODES.indexOf(mode as (typeof LOCK_MODES)[number]);
const ACCESS_SHARE = lockRank('AccessShareLock');
const ROW_EXCLUSIVE = lockRank('RowExclusiveLock');
/** Modes an INSERT waits for (they conflict with ROW EXCLUSIVE). */
export const blocksWriters = (mode: string) => lockRank(mode) >= lockRank('ShareLock');

export const SAMPLE_MS = 25;

type LiveObject = { name: string; kind: string };
export type LiveLock = { object: string; kind: string; mode: string };
export type BlockedSession = { pid: number; application: string; waitEvent: string; query: string; samples: number };
export type LiveLockReport = {
  verdict: 'ACCESS_SHARE_AT_MOST' | 'STRONGER_LOCK_TAKEN';
  /** Every live object the rehearsal locked, strongest mode first. */
  objects: LiveLock[];
  /** The subset held in more than ACCESS SHARE (empty on a clean run). */
  stronger: LiveLock[];
  /** Live relations and functions the rehearsal never locked at all. */
  untouched: number;
  /** System catalogs held in more than ROW EXCLUSIVE. */
  catalogs: Array<{ catalog: string; mode: string }>;
  /** Sessions seen waiting on the rehearsal's backend. */
  blocked: BlockedSession[];
  samples: number;
  sampleMs: number;
  /**
   * The most relation and object locks the rehearsal's backend held at once (the clone's included):
   * they come from the shared lock table (max_locks_per_transaction × connections), which an estate
   * of many tables could exhaust ("out of shared memory").
   */
  peakLocksHeld: number;
};

const KINDS: Record<string, string> = { r: 'table', i: 'index', S: 'sequence', v: 'view', m: 'materialized view', c: 'type', p: 'table', I: 'index', t: 'toast', f: 'foreign table' };

const LOCKS_SQL = `
  SELECT CASE WHEN l.locktype = 'relation' THEN 'r:' || l.relation
              WHEN l.classid = 'pg_catalog.pg_proc'::regclass THEN 'f:' || l.objid
              WHEN l.classid = 'pg_catalog.pg_namespace'::regclass THEN 'n:' || l.objid END AS key,
         CASE WHEN l.locktype = 'relation' AND l.relation < 16384 THEN l.relation::regclass::text END AS catalog,
         l.mode
    FROM pg_catalog.pg_locks l
   WHERE l.pid = $1 AND l.granted AND l.locktype IN ('relation', 'object')`;

const BLOCKED_SQL = `
  SELECT a.pid, coalesce(a.application_name, '') AS application, coalesce(a.wait_event, '') AS wait_event, left(coalesce(a.query, ''), 200) AS query
    FROM pg_catalog.pg_stat_activity a
   WHERE a.wait_event_type = 'Lock' AND a.pid <> $1 AND $1 = ANY (pg_catalog.pg_blocking_pids(a.pid))`;

export class LiveLockTracker {
  private readonly strongest = new Map<string, string>();
  private readonly catalogs = new Map<string, string>();
  private readonly blocked = new Map<string, BlockedSession>();
  private samples = 0;
  private peak = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private samplerError: unknown;

  private constructor(private readonly pid: number, private readonly live: Map<string, LiveObject>) {}

  /** Read the live objects on the rehearsal's connection `c` (pid: its backend), before the clone renames them. */
  static async start(pool: pg.Pool, c: pg.PoolClient): Promise<LiveLockTracker> {
    const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const r = await c.query<{ key: string; name: string; kind: string }>(`
      SELECT 'r:' || c.oid AS key, format('public.%I', c.relname) AS name, c.relkind::text AS kind
        FROM pg_catalog.pg_class c WHERE c.relnamespace = 'public'::regnamespace
      UNION ALL
      SELECT 'f:' || p.oid, format('public.%I(%s)', p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)), 'function'
        FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'public'::regnamespace
      UNION ALL
      SELECT 'n:' || 'public'::regnamespace::oid, 'schema public', 'schema'`);
    const live = new Map(r.rows.map((x) => [x.key, { name: x.name, kind: KINDS[x.kind] ?? x.kind }]));
    const t = new LiveLockTracker(pid, live);
    t.loop = t.sample(pool);
    return t;
  }

  private note(rows: Array<{ key: string | null; catalog: string | null; mode: string }>): LiveLock[] {
    const over: LiveLock[] = [];
    this.peak = Math.max(this.peak, rows.length);
    for (const x of rows) {
      if (x.catalog) {
        if (lockRank(x.mode) > ROW_EXCLUSIVE && lockRank(x.mode) > lockRank(this.catalogs.get(x.catalog) ?? '')) this.catalogs.set(x.catalog, x.mode);
        continue;
      }
      const o = x.key ? this.live.get(x.key) : undefined;
      if (!o) continue;
      if (lockRank(x.mode) > lockRank(this.strongest.get(x.key!) ?? '')) this.strongest.set(x.key!, x.mode);
      if (lockRank(x.mode) > ACCESS_SHARE) over.push({ object: o.name, kind: o.kind, mode: x.mode });
    }
    return over;
  }

  /** The rehearsal's backend, read on its own connection: the live objects it now holds in more than ACCESS SHARE. */
  async check(c: pg.PoolClient): Promise<LiveLock[]> {
    const r = await c.query<{ key: string | null; catalog: string | null; mode: string }>(LOCKS_SQL, [this.pid]);
    return this.note(r.rows);
  }

  private async sample(pool: pg.Pool): Promise<void> {
    const s = await pool.connect();
    try {
      await s.query(`SET application_name = 'birthgate-rehearsal-lock-sampler'`);
      while (!this.stopping) {
        const locks = await s.query<{ key: string | null; catalog: string | null; mode: string }>(LOCKS_SQL, [this.pid]);
        this.note(locks.rows);
        const waiting = await s.query<{ pid: number; application: string; wait_event: string; query: string }>(BLOCKED_SQL, [this.pid]);
        for (const w of waiting.rows) {
          const k = `${w.pid}:${w.query}`;
          const b = this.blocked.get(k) ?? { pid: w.pid, application: w.application, waitEvent: w.wait_event, query: w.query, samples: 0 };
          b.samples++;
          this.blocked.set(k, b);
        }
        this.samples++;
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
      }
    } catch (err) {
      this.samplerError = err;
    } finally {
      s.release();
    }
  }

  async stop(): Promise<LiveLockReport> {
    this.stopping = true;
    await this.loop;
    if (this.samplerError) throw this.samplerError;
    const objects = [...this.strongest].map(([k, mode]) => ({ ...this.live.get(k)!, mode }))
      .map((o) => ({ object: o.name, kind: o.kind, mode: o.mode }))
      .sort((a, b) => lockRank(b.mode) - lockRank(a.mode) || a.object.localeCompare(b.object));
    const stronger = objects.filter((o) => lockRank(o.mode) > ACCESS_SHARE);
    return {
      verdict: stronger.length ? 'STRONGER_LOCK_TAKEN' : 'ACCESS_SHARE_AT_MOST',
      objects,
      stronger,
      untouched: [...this.live.keys()].filter((k) => !this.strongest.has(k)).length,
      catalogs: [...this.catalogs].map(([catalog, mode]) => ({ catalog, mode })).sort((a, b) => a.catalog.localeCompare(b.catalog)),
      blocked: [...this.blocked.values()],
      samples: this.samples,
      sampleMs: SAMPLE_MS,
      peakLocksHeld: this.peak,
    };
  }
}
