// The rollback-only rehearsal (KB-3A66, KB-4410 §G): the whole apply packet in ONE
// BEGIN … ROLLBACK on the live state, the KB-7D57 post-apply test plan inside it, and the proof that
// the catalog is exactly as found afterwards (entry hash == exit hash, plus the raw catalog rows).
// It takes the packet's advisory lock: a rehearsal beside a running apply would rehearse a moving
// state. Inside, every lock wait is bounded by lock_timeout, so it never queues in front of traffic
// for long; its own locks are held until the ROLLBACK and that span is reported.
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
import { isPromotion, rehearsalSql } from './non-concurrent.ts';
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
  /** Lock modes this step added on birth_registry / dot_tools (held until the ROLLBACK). */
  locks: string[];
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
   * From the first step that took a lock writers wait for (SHARE or stronger on birth_registry or
   * dot_tools: the non-concurrent index build) to the ROLLBACK: how long live writers were blocked.
   */
  writeBlockingMs: number;
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

const RELS = ['public.birth_registry', 'public.dot_tools'];
/** Modes that conflict with ROW EXCLUSIVE, i.e. that make an INSERT wait. */
const WRITE_BLOCKING = /:(ShareLock|ShareRowExclusiveLock|ExclusiveLock|AccessExclusiveLock)$/;

async function heldLocks(c: pg.PoolClient): Promise<Set<string>> {
  const r = await c.query<{ l: string }>(
    `SELECT DISTINCT relation::regclass::text || ':' || mode AS l FROM pg_locks
      WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted AND relation = ANY ($1::regclass[])`, [RELS]);
  return new Set(r.rows.map((x) => x.l));
}

async function sequences(q: Pick<pg.Pool, 'query'>): Promise<Map<string, string | null>> {
  const r = await q.query<{ s: string; v: string | null }>(`SELECT sequencename AS s, last_value::text AS v FROM pg_sequences WHERE schemaname = 'public'`);
  return new Map(r.rows.map((x) => [x.s, x.v]));
}

function sequenceMoves(a: Map<string, string | null>, b: Map<string, string | null>): SequenceMove[] {
  return [...b.keys()].filter((k) => a.get(k) !== b.get(k)).sort().map((k) => ({ sequence: k, before: a.get(k) ?? null, after: b.get(k) ?? null }));
}

async function runSteps(c: pg.PoolClient, steps: PacketStep[], say: (l: string) => void): Promise<{ runs: StepRehearsal[]; failure?: string }> {
  const runs: StepRehearsal[] = [];
  const states = await stepStates(c, steps);
  const firstOff = states.findIndex((x) => !x.ok);
  const appliedThrough = firstOff === -1 ? Number.POSITIVE_INFINITY : firstOff === 0 ? 0 : states[firstOff - 1]!.step;
  for (const s of steps) {
    const kind = s.meta.concurrently ? 'index-build' : isPromotion(s) ? 'promotion' : 'plain';
    const v = await verifyStepSql(c, s);
    // As in applyPacket: a self-undoing step is re-run only while the packet is not past it.
    if (v.ok && !(s.meta.selfUndoing && appliedThrough <= s.step)) {
      runs.push({ step: s.step, title: s.meta.title, ran: false, ok: true, ms: 0, detail: `already applied: ${v.detail}`, locks: [], kind, startedAt: performance.now() });
      continue;
    }
    const before = await heldLocks(c);
    await c.query('SAVEPOINT rehearsal_step');
    const t0 = performance.now();
    try {
      // The one-way door is passed only inside this transaction, which is always rolled back.
      if (s.meta.requiresApproval) {
        await c.query(`SELECT set_config('birthgate.approval_owner', 'birthgate-rehearsal', true), set_config('birthgate.approval_id', 'REHEARSAL-ROLLED-BACK', true)`);
      }
      await c.query(rehearsalSql(s));
      const ms = performance.now() - t0;
      const after = await verifyStepSql(c, s);
      const locks = [...(await heldLocks(c))].filter((l) => !before.has(l)).sort();
      await c.query('RELEASE SAVEPOINT rehearsal_step');
      runs.push({ step: s.step, title: s.meta.title, ran: true, ok: after.ok, ms, detail: after.detail, locks, kind, startedAt: t0 });
      say(`step ${s.step} ${after.ok ? 'ok' : 'VERIFY FAILED'} in ${ms.toFixed(1)} ms${locks.length ? ` (${locks.join(', ')})` : ''}`);
      if (!after.ok) return { runs, failure: `step ${s.step} ran but its verify does not hold: ${after.detail}` };
    } catch (err) {
      const ms = performance.now() - t0;
      await c.query('ROLLBACK TO SAVEPOINT rehearsal_step');
      const detail = `${sqlstateOf(err) ?? ''} ${messageOf(err)}`.trim();
      runs.push({ step: s.step, title: s.meta.title, ran: true, ok: false, ms, detail, locks: [], kind, startedAt: t0 });
      say(`step ${s.step} FAILED: ${detail}`);
      return { runs, failure: `step ${s.step} failed: ${detail}` };
    }
  }
  return { runs };
}

async function runPlan(c: pg.PoolClient, before: PlanBefore, say: (l: string) => void): Promise<PlanRun[]> {
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
    let facts: Pick<RehearsalFacts, 'feasibility' | 'before' | 'steps' | 'plan' | 'triggers' | 'failure' | 'transactionMs' | 'writeBlockingMs'>;
    let broken = false;
    try {
      const t0 = performance.now();
      await c.query('BEGIN');
      try {
        await c.query(`SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`,
          [`${opts.lockTimeoutMs ?? 3000}ms`, `${opts.statementTimeoutMs ?? 1_800_000}ms`]);
        const feasibility = (await c.query<Feasibility>(readSql('runner/composite_feasibility.sql'))).rows[0];
        const before = await readPlanBefore(c);
        const { runs, failure } = await runSteps(c, steps, say);
        const plan = failure ? [] : await runPlan(c, before, say);
        const triggers = failure ? [] : await governedTriggers(c);
        facts = { feasibility, before, steps: runs, plan, triggers, failure, transactionMs: 0, writeBlockingMs: 0 };
      } finally {
        // KB-3A66 §1: "Every rehearsal ran inside BEGIN…ROLLBACK". Always, whatever happened above.
        await c.query('ROLLBACK').catch(() => (broken = true));
      }
      const end = performance.now();
      facts.transactionMs = end - t0;
      const firstBlocking = facts.steps.find((x) => x.locks.some((l) => WRITE_BLOCKING.test(l)));
      facts.writeBlockingMs = firstBlocking ? end - firstBlocking.startedAt : 0;
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
      entry,
      exit,
      entryRows,
      exitRows,
      sequences: sequenceMoves(seqBefore, await sequences(pool)),
      ...facts,
    };
  } finally {
    await lock.release();
  }
}

export async function rehearse(pool: pg.Pool, opts: RehearseOptions = {}): Promise<RehearsalReport & { files: string[] }> {
  const facts = await collectFacts(pool, opts);
  const report = buildReport(facts);
  const files = opts.report ? writeReport(report, opts.report) : [];
  return { ...report, files };
}

