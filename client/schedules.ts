// The Temporal Schedules of birthgate — the external scheduler KB-7D57 and KB-4410 §E name as a blocker
// (no pg_cron) — declared in one list, applied idempotently (`birthgate schedules apply`, `npm start`),
// listed with what they do and when (`birthgate schedules`); and the operator's side of the drift watch:
// its findings (`birthgate drift`) and the logged rebaseline that accepts a change (`birthgate rebaseline`).
//
// A Schedule belongs to the task queue whose workers run its workflow (the production worker registers
// both ticks): its id is `<task queue>:<name>`, so estates with their own task queues never share one.
// A third Schedule is one more entry in SCHEDULES: its workflow exported by workers/production-workflows.ts,
// its activities registered in activities/index.ts.
//
// | schedule      | every | overlap | catch-up window | why |
// |---------------|-------|---------|-----------------|-----|
// | permit-expiry | 1 min | SKIP    | 1 min           | see PERMIT_EXPIRY below |
// | drift-watch   | 1 min | SKIP    | 1 min           | see DRIFT_WATCH below   |
import {
  type Client,
  ScheduleAlreadyRunning,
  type ScheduleDescription,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { z } from 'zod';
import { DriftFinding } from '../activities/schedules.ts';
import { Actor, ApprovalId, describeIssues, Reason } from '../contracts/admission.ts';
import type { Queryable } from '../db/pool.ts';

export type ScheduleDecl = {
  /** Short name; the Schedule's id is `<task queue>:<name>`. */
  name: string;
  /** A workflow exported by workers/production-workflows.ts. */
  workflowType: string;
  summary: string;
  everyMs: number;
  overlap: Exclude<ScheduleOverlapPolicy, undefined>;
  catchupWindowMs: number;
  /** A tick that cannot finish in this time is ended, so a stuck one never holds SKIP's slot for good. */
  executionTimeoutMs: number;
  why: { every: string; overlap: string; catchupWindow: string };
};

const MINUTE = 60_000;

export const PERMIT_EXPIRY: ScheduleDecl = {
  name: 'permit-expiry',
  workflowType: 'permitExpirySweep',
  summary: 'RESERVED permits past their TTL → EXPIRED; live permits of a closed workflow run → CANCELLED (logged)',
  everyMs: MINUTE,
  overlap: ScheduleOverlapPolicy.SKIP,
  catchupWindowMs: MINUTE,
  executionTimeoutMs: 5 * MINUTE,
  why: {
    every: 'TTLs are 30 s to 24 h (900 s by default) and the gate refuses an expired permit at the insert and at commit '
      + 'whatever the sweep does; the sweep makes the ledger say so and frees uq_permit_active for a fresh admission of '
      + 'the code: at most a minute late',
    overlap: 'two sweeps at once would only race for the same rows (SKIP LOCKED makes that safe, not useful)',
    catchupWindow: 'after an outage one sweep does everything the missed ones would have; replaying them adds nothing',
  },
};

export const DRIFT_WATCH: ScheduleDecl = {
  name: 'drift-watch',
  workflowType: 'driftWatchTick',
  summary: 'catalog fingerprint + data-level invariants computed, the gate\'s guard refreshed, every finding recorded',
  everyMs: MINUTE,
  overlap: ScheduleOverlapPolicy.SKIP,
  catchupWindowMs: MINUTE,
  executionTimeoutMs: 5 * MINUTE,
  why: {
    every: 'SECURITY.md promises a bypass no DDL records is a finding "within one drift tick"; a preflight recomputes '
      + 'the dims anyway once its stored answer is 5 s old, so the tick is the backstop and the record (~12 ms of SQL '
      + 'at prod scale)',
    overlap: 'ticks serialise on the watch\'s row in the database; a second one at once would only wait for the first',
    catchupWindow: 'a missed tick is not worth replaying: the next one computes the state as it is then',
  },
};

/** Every Schedule birthgate runs. */
export const SCHEDULES: readonly ScheduleDecl[] = [PERMIT_EXPIRY, DRIFT_WATCH];

export const scheduleId = (taskQueue: string, name: string) => `${taskQueue}:${name}`;

export type ScheduleTarget = {
  taskQueue: string;
  schedules?: readonly ScheduleDecl[];
  /** Benchmarks only: another interval than the declared one. */
  everyMs?: number;
};

/** What the server should hold for one declared Schedule, in the units its description uses. */
function wanted(d: ScheduleDecl, t: ScheduleTarget) {
  return {
    every: t.everyMs ?? d.everyMs,
    overlap: d.overlap,
    catchupWindow: d.catchupWindowMs,
    pauseOnFailure: false,
    workflowType: d.workflowType,
    taskQueue: t.taskQueue,
    workflowExecutionTimeout: d.executionTimeoutMs,
  };
}

function held(s: ScheduleDescription): Record<keyof ReturnType<typeof wanted>, unknown> {
  const toMs = (v: unknown) => (typeof v === 'number' ? v : v === undefined ? undefined : Number(v));
  return {
    every: s.spec.intervals?.length === 1 && !s.spec.calendars?.length ? s.spec.intervals[0]!.every : undefined,
    overlap: s.policies.overlap,
    catchupWindow: s.policies.catchupWindow,
    pauseOnFailure: s.policies.pauseOnFailure,
    workflowType: s.action.workflowType,
    taskQueue: s.action.taskQueue,
    workflowExecutionTimeout: toMs(s.action.workflowExecutionTimeout),
  };
}

/** The fields in which the server's Schedule differs from its declaration (empty: as declared). */
export function differences(d: ScheduleDecl, t: ScheduleTarget, s: ScheduleDescription): string[] {
  const w = wanted(d, t);
  const h = held(s);
  return (Object.keys(w) as Array<keyof typeof w>).filter((k) => w[k] !== h[k]).map((k) => `${k}: ${String(h[k])} → ${String(w[k])}`);
}

function options(d: ScheduleDecl, t: ScheduleTarget) {
  const w = wanted(d, t);
  return {
    spec: { intervals: [{ every: w.every }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: d.workflowType,
      taskQueue: t.taskQueue,
      workflowId: scheduleId(t.taskQueue, d.name),
      args: [],
      workflowExecutionTimeout: d.executionTimeoutMs,
    },
    policies: { overlap: d.overlap, catchupWindow: d.catchupWindowMs, pauseOnFailure: false },
  };
}

export type Applied = { name: string; scheduleId: string; outcome: 'created' | 'updated' | 'unchanged'; changed: string[] };

/**
 * Create each declared Schedule, or bring an existing one to its declaration (spec, action, policies).
 * Idempotent: a Schedule already as declared is left alone. Its state (paused by an operator, a note)
 * is kept.
 */
export async function applySchedules(client: Client, t: ScheduleTarget): Promise<Applied[]> {
  const out: Applied[] = [];
  for (const d of t.schedules ?? SCHEDULES) {
    const id = scheduleId(t.taskQueue, d.name);
    try {
      await client.schedule.create({ scheduleId: id, ...options(d, t), state: { note: `birthgate: ${d.summary}` } });
      out.push({ name: d.name, scheduleId: id, outcome: 'created', changed: [] });
      continue;
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    }
    const handle = client.schedule.getHandle(id);
    const changed = differences(d, t, await handle.describe());
    if (changed.length > 0) {
      await handle.update((prev) => ({ ...prev, ...options(d, t), state: { paused: prev.state.paused, note: prev.state.note } }));
    }
    out.push({ name: d.name, scheduleId: id, outcome: changed.length ? 'updated' : 'unchanged', changed });
  }
  return out;
}

export type ScheduleView = {
  name: string;
  scheduleId: string;
  workflowType: string;
  summary: string;
  declared: { everyMs: number; overlap: string; catchupWindowMs: number; why: ScheduleDecl['why'] };
  /** Null when the Schedule does not exist on the server (`birthgate schedules apply` creates it). */
  server: {
    everyMs: number | undefined;
    overlap: string;
    catchupWindowMs: number;
    paused: boolean;
    note: string | undefined;
    actions: number;
    skippedOverlap: number;
    missedCatchupWindow: number;
    lastRun: { at: string; workflowId: string; runId: string; status: string } | null;
    nextRun: string | null;
    differences: string[];
  } | null;
};

/** Every declared Schedule of the task queue as the server holds it, with its last and next run. */
export async function listSchedules(client: Client, t: ScheduleTarget): Promise<ScheduleView[]> {
  const out: ScheduleView[] = [];
  for (const d of t.schedules ?? SCHEDULES) {
    const id = scheduleId(t.taskQueue, d.name);
    const view: ScheduleView = {
      name: d.name, scheduleId: id, workflowType: d.workflowType, summary: d.summary,
      declared: { everyMs: d.everyMs, overlap: d.overlap, catchupWindowMs: d.catchupWindowMs, why: d.why },
      server: null,
    };
    let s: ScheduleDescription;
    try {
      s = await client.schedule.getHandle(id).describe();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) {
        out.push(view);
        continue;
      }
      throw err;
    }
    const last = s.info.recentActions.at(-1);
    let lastRun: NonNullable<ScheduleView['server']>['lastRun'] = null;
    if (last) {
      const { workflowId, firstExecutionRunId } = last.action.workflow;
      const status = await client.workflow.getHandle(workflowId, firstExecutionRunId).describe()
        .then((w) => w.status.name as string, () => 'UNKNOWN (history gone)');
      lastRun = { at: last.takenAt.toISOString(), workflowId, runId: firstExecutionRunId, status };
    }
    view.server = {
      everyMs: s.spec.intervals?.[0]?.every,
      overlap: s.policies.overlap ?? 'SKIP',
      catchupWindowMs: s.policies.catchupWindow,
      paused: s.state.paused,
      note: s.state.note,
      actions: s.info.numActionsTaken,
      skippedOverlap: s.info.numActionsSkippedOverlap,
      missedCatchupWindow: s.info.numActionsMissedCatchupWindow,
      lastRun,
      nextRun: s.info.nextActionTimes[0]?.toISOString() ?? null,
      differences: differences(d, t, s),
    };
    out.push(view);
  }
  return out;
}

/**
 * Take one action of a Schedule now (`trigger`) and wait for that tick's result: the runbook's "run the
 * sweep / the watch now", and how the tests make a tick happen. A scheduled tick that starts meanwhile is
 * waited for too; the newest result is returned.
 */
export async function runScheduleNow<T = unknown>(client: Client, id: string, opts: { timeoutMs?: number } = {}): Promise<{ workflowId: string; runId: string; result: T }> {
  const handle = client.schedule.getHandle(id);
  const taken = (await handle.describe()).info.numActionsTaken;
  await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    const info = (await handle.describe()).info;
    if (info.numActionsTaken > taken) {
      const fresh = info.recentActions.slice(-(info.numActionsTaken - taken));
      let last: { workflowId: string; runId: string; result: T } | undefined;
      for (const a of fresh) {
        const { workflowId, firstExecutionRunId } = a.action.workflow;
        const result = await client.workflow.getHandle(workflowId, firstExecutionRunId, { followRuns: false }).result() as T;
        last = { workflowId, runId: firstExecutionRunId, result };
      }
      return last!;
    }
    if (Date.now() > deadline) throw new Error(`schedule ${id}: the triggered action did not start within ${opts.timeoutMs ?? 60_000} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Remove the task queue's Schedules (tests' teardown; `birthgate schedules delete`). Missing ones are skipped. */
export async function deleteSchedules(client: Client, t: ScheduleTarget): Promise<string[]> {
  const gone: string[] = [];
  for (const d of t.schedules ?? SCHEDULES) {
    const id = scheduleId(t.taskQueue, d.name);
    try {
      await client.schedule.getHandle(id).delete();
      gone.push(id);
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  return gone;
}

// ───────────────────────────── the drift watch's record (operators) ─────────────────────────────

/** A refused input: nothing was sent. */
export class DriftInputError extends Error {
  override name = 'DriftInputError';
}

const StoredFinding = DriftFinding.extend({
  resolved_at: z.string().nullable(),
  resolved_by: z.string().nullable(),
  expected: z.string().nullable(),
  actual: z.string().nullable(),
  first_seen_by: z.string(),
  last_seen_by: z.string(),
});
export type StoredFinding = z.infer<typeof StoredFinding>;

export type DriftReport = {
  watch: { lastTickAt: string | null; lastTickBy: string | null; ticks: number } | null;
  open: StoredFinding[];
  resolved: StoredFinding[];
};

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : v === null || v === undefined ? null : String(v));

/**
 * What the drift watch recorded (birth_drift_finding, birth_drift_watch; step 17): the open findings,
 * and with `resolved` the latest resolved ones too. Read on an operator's login (birthgate_operator
 * may SELECT both tables).
 */
export async function driftFindings(db: Queryable, opts: { resolved?: number } = {}): Promise<DriftReport> {
  const w = (await db.query<{ last_tick_at: Date | null; last_tick_by: string | null; ticks: string }>(
    'SELECT last_tick_at, last_tick_by, ticks::text FROM birth_drift_watch WHERE singleton')).rows[0];
  const rows = (await db.query(
    `(SELECT f.* FROM birth_drift_finding f WHERE f.resolved_at IS NULL ORDER BY f.finding_id)
     UNION ALL
     (SELECT f.* FROM birth_drift_finding f WHERE f.resolved_at IS NOT NULL ORDER BY f.resolved_at DESC, f.finding_id DESC LIMIT $1)`,
    [opts.resolved ?? 0])).rows;
  const findings = rows.map((r: Record<string, unknown>) => StoredFinding.parse({
    ...r, count: r.block_count ?? null, first_seen: iso(r.first_seen), last_seen: iso(r.last_seen), resolved_at: iso(r.resolved_at),
  }));
  return {
    watch: w ? { lastTickAt: iso(w.last_tick_at), lastTickBy: w.last_tick_by, ticks: Number(w.ticks) } : null,
    open: findings.filter((f) => f.resolved_at === null),
    resolved: findings.filter((f) => f.resolved_at !== null),
  };
}

export const RebaselineRequest = z.strictObject({ owner: Actor, reason: Reason, approvalId: ApprovalId });
export type RebaselineRequest = z.infer<typeof RebaselineRequest>;

const Accepted = z.object({ kind: z.string(), name: z.string(), drift: z.string(), expected: z.string().nullable(), actual: z.string().nullable() });
export const RebaselineResult = z.object({
  baseline_set: z.string(),
  rows_captured: z.number().int(),
  remaining_findings: z.number().int().nullable(),
  accepted: z.array(Accepted),
  watch: z.object({ open: z.number().int(), resolved: z.number().int(), findings: z.array(DriftFinding) }).passthrough(),
});
export type RebaselineResult = z.infer<typeof RebaselineResult>;

/**
 * The only way to accept a change the drift watch reports (SECURITY.md): fn_drift_accept on an operator's
 * login — fn_drift_rebaseline (a new logged baseline set), what it accepted, and the findings it cleared
 * resolved in its name, in one transaction. Data-level findings stay open until the data is repaired.
 */
export async function rebaseline(db: Queryable, raw: RebaselineRequest): Promise<RebaselineResult> {
  const parsed = RebaselineRequest.safeParse(raw);
  if (!parsed.success) throw new DriftInputError(`rebaseline: ${describeIssues(parsed.error)}`);
  const r = parsed.data;
  const { rows } = await db.query<{ r: unknown }>('SELECT fn_drift_accept($1, $2, $3) AS r', [r.owner, r.reason, r.approvalId]);
  return RebaselineResult.parse(rows[0]!.r);
}
