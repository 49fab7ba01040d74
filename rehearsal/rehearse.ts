// The rollback-only rehearsal (KB-3A66, KB-4410 §G): the whole apply packet in ONE
// BEGIN … ROLLBACK on a clone of the live state (DESIGN §5), the KB-7D57 post-apply test plan inside
// it, and the proof that the catalog is exactly as found afterwards (entry hash == exit hash, plus the
// raw catalog rows).
// Issue 9 item 6: the clone is built first inside that transaction (rehearsal/clone.ts) and proven equal
// to the live state; the steps, their locks (the composite build's SHARE, the promotion's ACCESS
// EXCLUSIVE) and the plan then fall on the clone, as KB-3A66 §4 did it ("on an exact temp clone …
// without locking production"). The live objects are only read; the strongest lock each got is proven
// (rehearsal/live-locks.ts), and a step that takes more on a live object fails there, loudly.
// It takes the packet's advisory lock: a rehearsal beside a running apply would rehearse a moving
// state. Inside, every lock wait is bounded by lock_timeout, so it never queues in front of traffic
// for long.
import type pg from 'pg';
import { readSql } from '../db/sql-files.ts';
import { messageOf, sqlstateOf } from '../packet/errors.ts';
import { catalogFingerprint, type Fingerprint } from '../packet/fingerprint.ts';
import { stepStates } from '../packet/drift.ts';
import { acquirePacketLock } from '../packet/lock.ts';
import { discoverSteps, type PacketStep } from '../packet/steps.ts';
import { governedTriggers } from '../packet/triggers.ts';
import { verifyStepSql } from '../packet/verify.ts';
import { catalogRows, type CatalogRows } from './catalog-rows.ts';
import { buildClone, cloneFidelity, CloneRefused, type CloneFidelity, type CloneSummary } from './clone.ts';
import { blocksWriters, LiveLockTracker, type LiveLock, type LiveLockReport } from './live-locks.ts';
import { isPromotion, rehearsalSql, stepLock } from './non-concurrent.ts';
import { PLAN, readPlanBefore, type PlanBefore } from './plan.ts';
import { buildReport, writeReport, type RehearsalReport } from './report.ts';

export type RehearseOptions = {
  /** Write the report to `<report>.md` and `<report>.json` (an .md/.json extension is dropped). */
  report?: string;
  stepsRoot?: string;
  through?: number;
  lockTimeoutMs?: number;
  statementTimeoutMs?: number;
  onProgress?: (line: string) => void;
};

export type StepRehearsal = {
  step: number;
  title: string;
  ran: boolean;
  ok: boolean;
  ms: number;
  detail: string;
  /** The lock the composite steps hold on the clone's table for their window (non-concurrent.ts stepLock). */
  locks: string[];
  /** Live objects this step held in more than ACCESS SHARE (empty, or the step failed for it). */
  liveLocks: LiveLock[];
  /** performance.now() when the step started (to time the write-blocking window). */
  startedAt: number;
  kind: 'plain' | 'index-build' | 'promotion';
};

export type PlanRun = { id: string; line: string; ok: boolean; ms: number; detail: string };

export type Feasibility = {
  codes_in_many_collections: string;
  duplicate_pairs: string;
  null_collections: string;
  fk_references: string;
  on_conflict_entity_code_functions: string;
  births: string;
  collections: string;
};

export type SequenceMove = { sequence: string; before: string | null; after: string | null };

/** Everything the report is built from; kept apart from rendering so tests can assert on it. */
export type RehearsalFacts = {
  database: string;
  serverVersion: string;
  startedAt: string;
  durationMs: number;
  /** From BEGIN to ROLLBACK. */
  transactionMs: number;
  /**
   * From the first step that took a lock writers wait for (SHARE or stronger) on a LIVE object to the
   * ROLLBACK: how long live writers could have been blocked. 0 when the live objects were only read.
   */
  writeBlockingMs: number;
  /** The clone the steps ran on (undefined: it could not be built, nothing was rehearsed). */
  clone: CloneSummary | undefined;
  /** The clone's fingerprint against the live entry fingerprint, read inside the transaction. */
  fidelity: CloneFidelity | undefined;
  /** The strongest lock on each live object, and who waited on the rehearsal. */
  liveLocks: LiveLockReport;
  entry: Fingerprint;
  exit: Fingerprint;
  entryRows: CatalogRows;
  exitRows: CatalogRows;
  feasibility: Feasibility | undefined;
  before: PlanBefore | undefined;
  steps: StepRehearsal[];
  plan: PlanRun[];
  triggers: Array<{ table: string; trigger: string; enabled: string }>;
  sequences: SequenceMove[];
  failure: string | undefined;
};

async function sequences(q: Pick<pg.Pool, 'query'>): Promise<Map<string, string | null>> {
  const r = await q.query<{ s: string; v: string | null }>(`SELECT sequencename AS s, last_value::text AS v FROM pg_sequences WHERE schemaname = 'public'`);
  return new Map(r.rows.map((x) => [x.s, x.v]));
}

function sequenceMoves(a: Map<string, string | null>, b: Map<string, string | null>): SequenceMove[] {
  return [...b.keys()].filter((k) => a.get(k) !== b.get(k)).sort().map((k) => ({ sequence: k, before: a.get(k) ?? null, after: b.get(k) ?? null }));
}

const liveLockText = (xs: LiveLock[]) => xs.map((x) => `${x.mode} on live ${x.object}`).join(', ');

async function runSteps(c: pg.PoolClient, steps: PacketStep[], tracker: LiveLockTracker, say: (l: string) => void): Promise<{ runs: StepRehearsal[]; failure?: string }> {
  const runs: StepRehearsal[] = [];
  const states = await stepStates(c, steps);
  const firstOff = states.findIndex((x) => !x.ok);
  const appliedThrough = firstOff === -1 ? Number.POSITIVE_INFINITY : firstOff === 0 ? 0 : states[firstOff - 1]!.step;
  for (const s of steps) {
    const kind = s.meta.concurrently ? 'index-build' : isPromotion(s) ? 'promotion' : 'plain';
    const v = await verifyStepSql(c, s);
    // As in applyPacket: a self-undoing step is re-run only while the packet is not past it.
    if (v.ok && !(s.meta.selfUndoing && appliedThrough <= s.step)) {
      runs.push({ step: s.step, title: s.meta.title, ran: false, ok: true, ms: 0, detail: `already applied: ${v.detail}`, locks: [], liveLocks: [], kind, startedAt: performance.now() });
      continue;
    }
    await c.query('SAVEPOINT rehearsal_step');
    const t0 = performance.now();
    try {
      // The one-way door is passed only inside this transaction, which is always rolled back.
      if (s.meta.requiresApproval) {
        await c.query(`SELECT set_config('birthgate.approval_owner', 'birthgate-rehearsal', true), set_config('birthgate.approval_id', 'REHEARSAL-ROLLED-BACK', true)`);
      }
      await c.query(rehearsalSql(s));
      const ms = performance.now() - t0;
      // Before anything else: a live object held in more than ACCESS SHARE fails the step, and the
      // savepoint's rollback releases that lock now rather than at the end of the rehearsal.
      const live = await tracker.check(c);
      if (live.length) {
        await c.query('ROLLBACK TO SAVEPOINT rehearsal_step');
        const detail = `took ${liveLockText(live)}: the rehearsal only reads live objects; refused`;
        runs.push({ step: s.step, title: s.meta.title, ran: true, ok: false, ms, detail, locks: [], liveLocks: live, kind, startedAt: t0 });
        say(`step ${s.step} REFUSED: ${detail}`);
        return { runs, failure: `step ${s.step} ${detail}` };
      }
      const after = await verifyStepSql(c, s);
      const locks = stepLock(s, kind);
      await c.query('RELEASE SAVEPOINT rehearsal_step');
      runs.push({ step: s.step, title: s.meta.title, ran: true, ok: after.ok, ms, detail: after.detail, locks, liveLocks: [], kind, startedAt: t0 });
      say(`step ${s.step} ${after.ok ? 'ok' : 'VERIFY FAILED'} in ${ms.toFixed(1)} ms${locks.length ? ` (${locks.join(', ')})` : ''}`);
      if (!after.ok) return { runs, failure: `step ${s.step} ran but its verify does not hold: ${after.detail}` };
    } catch (err) {
      const ms = performance.now() - t0;
      // The failed statement aborted the transaction: roll back to the savepoint to read the locks,
      // which that rollback released; the sampler has seen them.
      await c.query('ROLLBACK TO SAVEPOINT rehearsal_step');
      const detail = `${sqlstateOf(err) ?? ''} ${messageOf(err)}`.trim();
      runs.push({ step: s.step, title: s.meta.title, ran: true, ok: false, ms, detail, locks: [], liveLocks: [], kind, startedAt: t0 });
      say(`step ${s.step} FAILED: ${detail}`);
      return { runs, failure: `step ${s.step} failed: ${detail}` };
    }
  }
  return { runs };
}

async function runPlan(c: pg.PoolClient, before: PlanBefore, tracker: LiveLockTracker, say: (l: string) => void): Promise<PlanRun[]> {
  const tag = (await c.query<{ t: string }>(`SELECT to_hex((random() * 2147483647)::int) || to_hex(pg_backend_pid()) AS t`)).rows[0]!.t;
  const out: PlanRun[] = [];
  for (const line of PLAN) {
    await c.query('SAVEPOINT plan_line');
    const t0 = performance.now();
    let r: { ok: boolean; detail: string };
    try {
      r = await line.run(c, { before, tag });
    } catch (err) {
      r = { ok: false, detail: `error: ${sqlstateOf(err) ?? ''} ${messageOf(err)}`.trim() };
    }
    // Read before the savepoint's rollback releases them (after an error, the sampler's view stands).
    const live = r.detail.startsWith('error:') ? [] : await tracker.check(c);
    if (live.length) r = { ok: false, detail: `${r.detail}; took ${liveLockText(live)}: the rehearsal only reads live objects` };
    await c.query('ROLLBACK TO SAVEPOINT plan_line');
    out.push({ id: line.id, line: line.line, ok: r.ok, ms: performance.now() - t0, detail: r.detail });
    say(`plan ${r.ok ? 'pass' : 'FAIL'}: ${line.line} — ${r.detail}`);
  }
  return out;
}

export async function collectFacts(pool: pg.Pool, opts: RehearseOptions = {}): Promise<RehearsalFacts> {
  const say = opts.onProgress ?? (() => undefined);
  const all = discoverSteps(opts.stepsRoot);
  const steps = opts.through === undefined ? all : all.filter((s) => s.step <= opts.through!);
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const lock = await acquirePacketLock(pool, 'rehearsal');
  try {
    const meta = await pool.query<{ d: string; v: string }>(`SELECT current_database() AS d, current_setting('server_version') AS v`);
    const entry = await catalogFingerprint(pool);
    const entryRows = await catalogRows(pool);
    const seqBefore = await sequences(pool);

    const c = await pool.connect();
    type Inside = Pick<RehearsalFacts, 'feasibility' | 'before' | 'steps' | 'plan' | 'triggers' | 'failure' | 'clone' | 'fidelity'>;
    let facts: Inside = { feasibility: undefined, before: undefined, steps: [], plan: [], triggers: [], failure: undefined, clone: undefined, fidelity: undefined };
    let liveLocks: LiveLockReport;
    let transactionMs = 0;
    let writeBlockingMs = 0;
    let broken = false;
    try {
      const t0 = performance.now();
      // One snapshot for the whole transaction: the live state the clone is proven equal to is the
      // one it copied, whatever writers commit meanwhile.
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      // The sampler watches this backend from BEGIN to ROLLBACK; the live objects are read first.
      const tracker = await LiveLockTracker.start(pool, c).catch(async (err) => {
        await c.query('ROLLBACK').catch(() => (broken = true));
        throw err;
      });
      let blockingSince: number | undefined;
      try {
        await c.query(`SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`,
          [`${opts.lockTimeoutMs ?? 3000}ms`, `${opts.statementTimeoutMs ?? 1_800_000}ms`]);
        // One backend, one core: no parallel workers for the clone's index builds and scans, so the
        // estate's own sessions keep the rest of the machine. And its writes go to disk as they happen
        // (backend_flush_after): left to the kernel, the clone's gigabyte of pages is flushed in one go
        // some 30 s later, and a concurrent writer's commit waits for it (measured: IO:WALSync stalls).
        await c.query(`SELECT set_config('max_parallel_maintenance_workers', '0', true), set_config('max_parallel_workers_per_gather', '0', true),
                              set_config('backend_flush_after', '256kB', true)`);
        facts = await inTransaction(c, steps, tracker, say);
        const late = facts.failure ? [] : await tracker.check(c);
        if (late.length) facts.failure = `took ${liveLockText(late)} on a live object after the plan: refused`;
        blockingSince = facts.steps.find((x) => x.liveLocks.some((l) => blocksWriters(l.mode)))?.startedAt;
      } catch (err) {
        // Whatever broke the transaction (the clone refused, a read of a live table timed out), the
        // report says so; nothing was applied anywhere the ROLLBACK does not undo.
        facts.failure = err instanceof CloneRefused ? err.message : `rehearsal failed: ${`${sqlstateOf(err) ?? ''} ${messageOf(err)}`.trim()}`;
      } finally {
        // KB-3A66 §1: "Every rehearsal ran inside BEGIN…ROLLBACK". Always, whatever happened above.
        await c.query('ROLLBACK').catch(() => (broken = true));
        const end = performance.now();
        transactionMs = end - t0;
        writeBlockingMs = blockingSince === undefined ? 0 : end - blockingSince;
        liveLocks = await tracker.stop();
      }
    } finally {
      c.release(broken);
    }

    const exit = await catalogFingerprint(pool);
    const exitRows = await catalogRows(pool);
    return {
      database: meta.rows[0]!.d,
      serverVersion: meta.rows[0]!.v,
      startedAt,
      durationMs: performance.now() - started,
      transactionMs,
      writeBlockingMs,
      entry,
      exit,
      entryRows,
      exitRows,
      sequences: sequenceMoves(seqBefore, await sequences(pool)),
      liveLocks,
      ...facts,
    };
  } finally {
    await lock.release();
  }
}

/** Inside the transaction: the clone, its proof, then the packet and the plan on it. */
async function inTransaction(
  c: pg.PoolClient,
  steps: PacketStep[],
  tracker: LiveLockTracker,
  say: (l: string) => void,
): Promise<Pick<RehearsalFacts, 'feasibility' | 'before' | 'steps' | 'plan' | 'triggers' | 'failure' | 'clone' | 'fidelity'>> {
  const none = { feasibility: undefined, before: undefined, steps: [], plan: [], triggers: [] };
  const live = await catalogFingerprint(c);
  const clone = await buildClone(c, { steps, say });
  const built = await tracker.check(c);
  if (built.length) return { ...none, clone, fidelity: undefined, failure: `the clone build took ${liveLockText(built)}: refused before any step` };
  // The clone is the live state, or nothing is rehearsed on it.
  const fidelity = cloneFidelity(live, await catalogFingerprint(c), clone.liveSchema);
  if (!fidelity.equal) {
    return { ...none, clone, fidelity, failure: `the clone differs from the live state (${fidelity.diff.slice(0, 5).map((d) => d.path).join(', ')}): nothing rehearsed` };
  }
  say(`clone equals the live state (fingerprint ${fidelity.cloneHash.slice(0, 12)}…, OIDs aside)`);
  const feasibility = (await c.query<Feasibility>(readSql('runner/composite_feasibility.sql'))).rows[0];
  const before = await readPlanBefore(c);
  const { runs, failure } = await runSteps(c, steps, tracker, say);
  const plan = failure ? [] : await runPlan(c, before, tracker, say);
  const triggers = failure ? [] : await governedTriggers(c);
  return { feasibility, before, steps: runs, plan, triggers, failure, clone, fidelity };
}

export async function rehearse(pool: pg.Pool, opts: RehearseOptions = {}): Promise<RehearsalReport & { files: string[] }> {
  const facts = await collectFacts(pool, opts);
  const report = buildReport(facts);
  const files = opts.report ? writeReport(report, opts.report) : [];
  return { ...report, files };
}

