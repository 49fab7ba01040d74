// The Temporal Schedules' ticks (KB-7D57 "External scheduler — pg_cron absent"; client/schedules.ts
// declares the Schedules, workflows/schedules.ts runs these): the permit-expiry sweep — RESERVED past
// its TTL → EXPIRED (fn_permit_expire_due), and a live permit whose owning workflow is closed in
// Temporal withdrawn (fn_permit_reconcile_closed, step 17) — and the drift watch (fn_drift_watch_tick:
// every dim computed, the guard the gate reads refreshed, every finding recorded). The database
// decides and logs; these only read Temporal and call the functions the worker may call.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import { Actor, DbId, FailureType } from '../contracts/admission.ts';
import type { Pool } from '../db/pool.ts';
import { dbStep, nonRetryable, parseInput, toFailure } from './failures.ts';

export const TickInput = z.strictObject({ actor: Actor });
export type TickInput = z.infer<typeof TickInput>;

/** Temporal's closed statuses: a permit whose owning workflow ended in one of them is abandoned. */
export const ClosedStatus = z.enum(['COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT']);
export type ClosedStatus = z.infer<typeof ClosedStatus>;

/**
 * What Temporal says of the workflow that owns a permit, read from its current run (the latest of its
 * id): a chain that continued as new, or a run reset into a new one, is still the same owner while
 * that run is open. `unknown`: no such workflow here (deleted past retention, another namespace, or a
 * permit requested by hand) — never taken for closed, so a sweep pointed at the wrong namespace cancels nothing.
 */
export type OwnerState =
  | { kind: 'open'; status: string }
  | { kind: 'closed'; status: ClosedStatus; runId: string; closedAt: Date }
  | { kind: 'unknown'; why: string };
export type DescribeOwner = (workflowId: string) => Promise<OwnerState>;

/** The worker's own client (the activity context's, over the worker's connection and namespace). */
export const describeOwnerWithWorkerClient: DescribeOwner = async (workflowId) => {
  let d;
  try {
    d = await Context.current().client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    // Over a NativeConnection the client may report NOT_FOUND as a bare gRPC error (code 5).
    if (err instanceof WorkflowNotFoundError || (err as { code?: unknown }).code === 5) return { kind: 'unknown', why: 'workflow not found' };
    throw err;
  }
  const closed = ClosedStatus.safeParse(d.status.name);
  if (!closed.success) return { kind: 'open', status: d.status.name };
  if (!d.closeTime) return { kind: 'unknown', why: `${d.status.name} without a close time` };
  return { kind: 'closed', status: closed.data, runId: d.runId, closedAt: d.closeTime };
};

const Reconciled = z.object({ permitId: DbId, workflowId: z.string(), from: z.string(), to: z.string(), runStatus: ClosedStatus });
const Skipped = z.object({ permitId: DbId, workflowId: z.string(), why: z.string() });

export const PermitSweepResult = z.object({
  /** RESERVED permits past their TTL moved to EXPIRED by this tick. */
  expired: z.number().int().nonnegative(),
  /** Live permits whose owning workflow was looked up. */
  checked: z.number().int().nonnegative(),
  /** Withdrawn because their owning workflow is closed (CANCELLED, or FAILED from CONSUMED). */
  reconciled: z.array(Reconciled),
  /** Left alone: owner unknown to Temporal, or the database refused (the permit moved after the close). */
  skipped: z.array(Skipped),
});
export type PermitSweepResult = z.infer<typeof PermitSweepResult>;

export const DriftFinding = z.object({
  finding_id: z.coerce.string(),
  dim: z.string(),
  kind: z.string().nullable(),
  name: z.string().nullable(),
  drift: z.string().nullable(),
  detail: z.string().nullable(),
  count: z.coerce.number().nullable(),
  hard: z.boolean(),
  first_seen: z.string(),
  last_seen: z.string(),
  ticks: z.number().int(),
});
export type DriftFinding = z.infer<typeof DriftFinding>;

/** fn_drift_watch_tick's answer: counts and the oldest 50 open findings. */
export const DriftWatchResult = z.object({
  at: z.string(),
  open: z.number().int(),
  new: z.number().int(),
  resolved: z.number().int(),
  hard: z.number().int(),
  findings: z.array(DriftFinding),
});
export type DriftWatchResult = z.infer<typeof DriftWatchResult>;

/** Live permits looked at per tick: one describe each (a parked birth's permit is looked at every tick). */
export const RECONCILE_BATCH = 1000;

type LivePermit = { permit_id: string; state: string; workflow_id: string };

/**
 * A tick on an estate without the packet's step 17 (an external estate stopped before the one-way
 * door; a rollback): no function to call (42883) or view to read (42P01). Not a passing outage: the
 * tick fails at once, saying so, instead of retrying every minute for its whole budget.
 */
async function tickStep<T>(what: string, fn: () => Promise<T>): Promise<T> {
  return dbStep(what, async () => {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== '42883' && code !== '42P01') throw err;
      throw nonRetryable(FailureType.PRECONDITION_FAILED,
        `${what}: ${(err as Error).message} — the packet is not applied through step 17 here (\`birthgate apply\`)`);
    }
  });
}

export function scheduleActivities(pool: Pool, deps: { describeOwner?: DescribeOwner } = {}) {
  const describeOwner = deps.describeOwner ?? describeOwnerWithWorkerClient;
  return {
    /** fn_permit_expire_due: RESERVED past expires_at → EXPIRED (SKIP LOCKED: a permit being consumed is left to its insert). */
    async expireDuePermits(raw: TickInput): Promise<number> {
      const i = parseInput(TickInput, raw, 'expireDuePermits');
      return tickStep('fn_permit_expire_due', async () => {
        const { rows } = await pool.query<{ n: number }>('SELECT fn_permit_expire_due($1) AS n', [i.actor]);
        return Number(rows[0]!.n);
      });
    },

    /**
     * Every live permit with an owning workflow (v_permit_active, oldest first, RECONCILE_BATCH of them):
     * its workflow described once; closed → fn_permit_reconcile_closed with the run, status and close time.
     * A refusal of the database for one permit (BG409: it moved after the close) is reported, not retried.
     */
    async reconcileClosedPermits(raw: TickInput): Promise<Omit<PermitSweepResult, 'expired'>> {
      const i = parseInput(TickInput, raw, 'reconcileClosedPermits');
      const live = await tickStep('v_permit_active', async () => (await pool.query<LivePermit>(
        `SELECT permit_id::text, state, workflow_id FROM v_permit_active
          WHERE workflow_id IS NOT NULL ORDER BY permit_id LIMIT $1`, [RECONCILE_BATCH])).rows);
      const owners = new Map<string, OwnerState>();
      const reconciled: PermitSweepResult['reconciled'] = [];
      const skipped: PermitSweepResult['skipped'] = [];
      for (const p of live) {
        Context.current().heartbeat(p.permit_id);
        let owner = owners.get(p.workflow_id);
        if (!owner) {
          try {
            owner = await describeOwner(p.workflow_id);
          } catch (err) {
            throw toFailure(err, `describe workflow ${p.workflow_id}`);
          }
          owners.set(p.workflow_id, owner);
        }
        if (owner.kind === 'open') continue;
        if (owner.kind === 'unknown') {
          skipped.push({ permitId: p.permit_id, workflowId: p.workflow_id, why: owner.why });
          continue;
        }
        try {
          const { rows } = await pool.query<{ state: string }>(
            'SELECT state FROM fn_permit_reconcile_closed($1::bigint, $2, $3, $4, $5, $6)',
            [p.permit_id, p.workflow_id, owner.runId, owner.status, owner.closedAt, i.actor]);
          const to = rows[0]!.state;
          if (to !== p.state) reconciled.push({ permitId: p.permit_id, workflowId: p.workflow_id, from: p.state, to, runStatus: owner.status });
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === '42883') throw nonRetryable(FailureType.PRECONDITION_FAILED, `fn_permit_reconcile_closed: ${(err as Error).message} — the packet is not applied through step 17 here`);
          if (code !== 'BG409') throw toFailure(err, `fn_permit_reconcile_closed(${p.permit_id})`);
          skipped.push({ permitId: p.permit_id, workflowId: p.workflow_id, why: (err as Error).message });
        }
      }
      return { checked: live.length, reconciled, skipped };
    },

    /** fn_drift_watch_tick: every dim computed (the guard refreshed), every finding recorded with first/last seen. */
    async recordDriftWatch(raw: TickInput): Promise<DriftWatchResult> {
      const i = parseInput(TickInput, raw, 'recordDriftWatch');
      return tickStep('fn_drift_watch_tick', async () => {
        const { rows } = await pool.query<{ r: unknown }>('SELECT fn_drift_watch_tick($1) AS r', [i.actor]);
        return DriftWatchResult.parse(rows[0]!.r);
      });
    },
  };
}

export type ScheduleActivities = ReturnType<typeof scheduleActivities>;
