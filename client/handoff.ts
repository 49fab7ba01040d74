// Starting the governance handoff (KB-35E7 §5): one long-running governanceHandoff workflow per estate
// database and task queue, started idempotently. `birthgate schedules apply` (client/schedules.ts)
// calls ensureGovernanceHandoff beside the Schedules it applies; anything else may call it as often as
// it likes — a running tail is left as it is.
//
// Why a long-running workflow and not a Schedule that starts one catch-up run per interval (overlap
// SKIP): the tail must notice new rows within seconds when the estate is busy and cost nothing when it
// is idle. A workflow waits on a durable timer that backs off from 1 s to 30 s and is cut short by a
// `wakeHandoff` signal; a Schedule would start a fresh execution (and its history) every interval,
// whether or not there is anything to hand off, and cannot be woken. Both are equally safe — the
// cursor is in the database — and a one-shot catch-up run exists for callers that want one
// (catchUpGovernanceHandoff: benchmarks, a manual run, a Schedule if an operator prefers one).
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { z } from 'zod';
import { describeIssues } from '../contracts/admission.ts';
import type { governanceHandoff } from '../workflows/index.ts';
import {
  GovernanceHandoffInput, governanceHandoffWorkflowId, type HandoffState, handoffStateQuery, wakeHandoffSignal,
} from '../workflows/handoff.ts';

export { governanceHandoffWorkflowId };

/** A refused input: nothing was sent. */
export class HandoffInputError extends Error {
  override name = 'HandoffInputError';
}

export const EnsureHandoffOptions = z.strictObject({
  /** The task queue the estate's production worker polls (BIRTHGATE_TASK_QUEUE). */
  taskQueue: z.string().min(1).max(200),
  /** The estate database the worker's pool is connected to. */
  database: z.string().min(1).max(63),
  /** Workflow input beyond the database (defaults: workflows/handoff.ts). */
  batchSize: z.number().int().optional(),
  batchesPerRun: z.number().int().optional(),
  idleMinMs: z.number().int().optional(),
  idleMaxMs: z.number().int().optional(),
  activities: z.enum(['local', 'remote']).optional(),
});
export type EnsureHandoffOptions = z.input<typeof EnsureHandoffOptions>;

export type EnsuredHandoff = {
  workflowId: string;
  runId: string;
  /** True when this call started it; false when a tail was already running (its options are kept). */
  started: boolean;
};

function parse(raw: unknown, untilCaughtUp: boolean): { o: z.output<typeof EnsureHandoffOptions>; input: GovernanceHandoffInput } {
  const parsed = EnsureHandoffOptions.safeParse(raw);
  if (!parsed.success) throw new HandoffInputError(`invalid governance handoff options: ${describeIssues(parsed.error)}`);
  const { taskQueue: _, ...rest } = parsed.data;
  const input = { ...rest, untilCaughtUp };
  const checked = GovernanceHandoffInput.safeParse(input);
  if (!checked.success) throw new HandoffInputError(`invalid governance handoff options: ${describeIssues(checked.error)}`);
  return { o: parsed.data, input };
}

/**
 * Start the estate's governance handoff unless it runs already. Idempotent: the workflow id is derived
 * from the task queue and the database, a start that finds one running returns it (`started: false`),
 * and a tail that ended (terminated, failed) is started afresh — it resumes at the database's cursor.
 */
export async function ensureGovernanceHandoff(client: Client, opts: EnsureHandoffOptions): Promise<EnsuredHandoff> {
  const { o, input } = parse(opts, false);
  const workflowId = governanceHandoffWorkflowId(o.taskQueue, o.database);
  try {
    const handle = await client.workflow.start<typeof governanceHandoff>('governanceHandoff', {
      taskQueue: o.taskQueue,
      workflowId,
      args: [input],
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
    return { workflowId, runId: handle.firstExecutionRunId, started: true };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const d = await client.workflow.getHandle(workflowId).describe();
    return { workflowId, runId: d.runId, started: false };
  }
}

export type CatchUp = { workflowId: string; state: HandoffState; attached: boolean };

/**
 * Hand off everything there is now and return (a one-shot run under the same workflow id, so it never
 * runs beside the long-running tail). When the tail is running, it is woken instead and its state
 * returned (`attached: true`): it does the same work.
 */
export async function catchUpGovernanceHandoff(client: Client, opts: EnsureHandoffOptions): Promise<CatchUp> {
  const { o, input } = parse(opts, true);
  const workflowId = governanceHandoffWorkflowId(o.taskQueue, o.database);
  try {
    const state = await client.workflow.execute<typeof governanceHandoff>('governanceHandoff', {
      taskQueue: o.taskQueue,
      workflowId,
      args: [input],
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
    return { workflowId, state, attached: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const handle = client.workflow.getHandle<typeof governanceHandoff>(workflowId);
    await handle.signal(wakeHandoffSignal);
    return { workflowId, state: await handle.query(handoffStateQuery), attached: true };
  }
}

/** The running tail's state (its totals since it started, the last batch's positions and gaps). */
export async function governanceHandoffState(client: Client, taskQueue: string, database: string): Promise<HandoffState> {
  return client.workflow.getHandle(governanceHandoffWorkflowId(taskQueue, database)).query(handoffStateQuery);
}
