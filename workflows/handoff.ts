// governanceHandoff — the governance handoff (KB-35E7 §5, KB-3A66 §8, DESIGN §5) as one long-running
// workflow per estate database: a cursor tail over the born tail of birth_registry and over
// registry_changelog. Each turn of its loop is one batch (the activity handoffBatch: one SQL statement
// that hands off up to `batchSize` rows of each tail and advances the durable cursor in the same
// transaction). While a batch comes back full it runs the next at once; caught up, it waits.
//
// Caught-up waiting without busy polling: a durable timer with exponential backoff (idleMinMs doubling
// to idleMaxMs, back to idleMinMs as soon as a batch finds work), cut short by the `wakeHandoff` signal.
// Not a LISTEN: the estate's only NOTIFY, fn_notify_change, fires on dot_tools alone (channel
// birthgate_dot_tools, payload the code), so it would miss every other family's changelog and births,
// and a listening activity would hold a connection and heartbeat for as long as the tail is idle. The
// timer costs a handful of history events per wait and bounds the delay of a new row to idleMaxMs.
//
// The cursor lives in the database, not here: a run that continues as new, a worker that dies
// mid-batch, a second workflow started by mistake — each next batch starts where the last committed one
// ended. The workflow's own totals are a view for humans (the query `handoffState`); the database's
// batch history (birth_handoff_batch) is the record.
//
// History stays bounded: continue-as-new after `batchesPerRun` turns, or sooner when the server
// suggests it. Each batch is an activity task by default (`activities: 'remote'`): its attempts show in
// the history, its heartbeats carry a cancellation to the statement (the guard cancels the backend), and
// a worker that dies mid-batch costs one 3 s heartbeat timeout. `activities: 'local'` runs batches as
// local activities instead — as safe (a re-run after a lost workflow task hands off the next rows) and
// with fewer history events, but at 5,000 rows per batch no faster (bench/handoff.ts: 70,434 rows in
// ~1.0 s either way at prod scale), and a dead worker costs a 10 s workflow task timeout.
//
// One per estate database: the workflow id is <task queue>:governance-handoff:<database>
// (client/handoff.ts starts it idempotently); the workflow refuses any other id, and the SQL refuses a
// worker connected to another database than the one the workflow serves.
//
// Deterministic: no I/O here; the only side effect is the activity.
import {
  ActivityFailure, ApplicationFailure, condition, continueAsNew, defineQuery, defineSignal, isCancellation, proxyActivities,
  proxyLocalActivities, setHandler, workflowInfo, type ActivityOptions,
} from '@temporalio/workflow';
import type { HandoffActivities, HandoffBatchResult } from '../activities/handoff.ts';
import { describeIssues, FailureType, nonRetryableFailureTypes } from '../contracts/admission.ts';
import { GovernanceHandoffInput, governanceHandoffWorkflowId, type HandoffRequest, type HandoffTotals } from '../contracts/handoff.ts';

export { GovernanceHandoffInput, governanceHandoffWorkflowId, type HandoffTotals };

export type HandoffState = {
  database: string;
  totals: HandoffTotals;
  /** What the last batch reported (null before the first). */
  mode: 'capture' | 'emit' | null;
  lastIds: { changelog: number | null; births: number | null };
  openGapIds: { changelog: number; births: number };
  /** The last batch found nothing more to do. */
  caughtUp: boolean;
  /** Why the last batch failed (a refusal, the database away); null while batches succeed. */
  blocked: string | null;
  /** The current wait when caught up or blocked. */
  idleMs: number;
  lastBatchAt: string | null;
};

export const handoffStateQuery = defineQuery<HandoffState>('handoffState');
/** Run the next batch now (a writer that knows it just committed, a test, an operator). */
export const wakeHandoffSignal = defineSignal('wakeHandoff');

// ───────────────────────────── activity options ─────────────────────────────

// A batch is one short statement (the worker's statement_timeout is 8 s): startToClose 10 s like every
// SQL step. Transient failures retry for 5 min, then the workflow marks itself blocked and tries again
// after a wait — a tail never gives up on its own. Refusals (a planted trigger, step 18 missing) are
// never retried by the activity: the workflow waits instead.
const batchOptions: ActivityOptions = {
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '5m',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: nonRetryableFailureTypes },
};

function handoffSteps(mode: HandoffRequest['activities']): Pick<HandoffActivities, 'handoffBatch'> {
  // Local: no heartbeats (the worker itself enforces startToClose).
  if (mode === 'local') return proxyLocalActivities<HandoffActivities>(batchOptions);
  // Remote: heartbeats carry a cancellation to the statement guard, which cancels the backend query.
  return proxyActivities<HandoffActivities>({ ...batchOptions, heartbeatTimeout: '3s' });
}

// ───────────────────────────── the workflow ─────────────────────────────

export async function governanceHandoff(raw: GovernanceHandoffInput): Promise<HandoffState> {
  const input = validInput(raw);
  const { workflowId, taskQueue } = workflowInfo();
  const expected = governanceHandoffWorkflowId(taskQueue, input.database);
  if (workflowId !== expected) {
    throw ApplicationFailure.create({
      type: FailureType.INVALID_INPUT, nonRetryable: true,
      message: `the governance handoff of ${input.database} on ${taskQueue} runs only as ${expected}, not ${workflowId}`,
    });
  }
  const state: HandoffState = {
    database: input.database,
    totals: input.carry ? { ...input.carry, runs: input.carry.runs + 1 } : { batches: 0, changelogRows: 0, births: 0, candidates: 0, events: 0, emitted: 0, abandoned: 0, runs: 1 },
    mode: null,
    lastIds: { changelog: null, births: null },
    openGapIds: { changelog: 0, births: 0 },
    caughtUp: false,
    blocked: null,
    idleMs: input.idleMinMs,
    lastBatchAt: null,
  };
  let woken = false;
  setHandler(handoffStateQuery, () => state);
  setHandler(wakeHandoffSignal, () => {
    woken = true;
  });
  const { handoffBatch } = handoffSteps(input.activities);
  /** Wait state.idleMs (a durable timer) or until woken; the next wait is twice as long, up to idleMaxMs. */
  const idle = async (): Promise<void> => {
    await condition(() => woken, state.idleMs);
    woken = false;
    state.idleMs = Math.min(state.idleMs * 2, input.idleMaxMs);
  };

  for (let turn = 0; ; turn++) {
    if (turn >= input.batchesPerRun || workflowInfo().continueAsNewSuggested) {
      // Nothing is lost: the cursor is in the database; the totals ride along for the humans.
      await continueAsNew<typeof governanceHandoff>({ ...raw, carry: state.totals });
    }
    let r: HandoffBatchResult;
    try {
      r = await handoffBatch({ database: input.database, limit: input.batchSize, actor: workflowId });
    } catch (err) {
      if (isCancellation(err)) throw err; // the tail was cancelled: stop, never count it as blocked
      const type = failureType(err);
      // A wrong database or input is a misconfiguration no wait cures; a one-shot catch-up reports any failure.
      if (type === FailureType.INVALID_INPUT || input.untilCaughtUp) throw err;
      state.blocked = `${type ?? 'failure'}: ${failureMessage(err)}`;
      state.caughtUp = false;
      await idle();
      continue;
    }
    record(state, r);
    if (r.more) {
      state.idleMs = input.idleMinMs;
      continue;
    }
    state.caughtUp = true;
    if (input.untilCaughtUp) return state;
    if (didWork(r)) state.idleMs = input.idleMinMs;
    await idle();
  }
}

function record(state: HandoffState, r: HandoffBatchResult): void {
  const t = state.totals;
  t.batches += 1;
  t.changelogRows += r.changelog.handedOff;
  t.births += r.births.handedOff;
  t.candidates += r.changelog.candidates + r.births.candidates;
  t.events += r.births.events;
  t.emitted += r.births.emitted;
  t.abandoned += r.changelog.abandoned + r.births.abandoned;
  state.mode = r.mode;
  state.lastIds = { changelog: r.changelog.lastId, births: r.births.lastId };
  state.openGapIds = { changelog: r.changelog.openGapIds, births: r.births.openGapIds };
  state.blocked = null;
  state.lastBatchAt = new Date().toISOString(); // the workflow clock: deterministic
}

function didWork(r: HandoffBatchResult): boolean {
  return r.changelog.handedOff + r.births.handedOff + r.births.emitted + r.changelog.abandoned + r.births.abandoned > 0;
}

function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

function validInput(raw: unknown): HandoffRequest {
  const parsed = GovernanceHandoffInput.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw ApplicationFailure.create({ type: FailureType.INVALID_INPUT, nonRetryable: true, message: `invalid governance handoff input: ${describeIssues(parsed.error)}` });
}
