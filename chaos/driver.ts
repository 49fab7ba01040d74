// One admission of a chaos run, driven the way a DOT and its operators would, through the client
// library (client/admissions.ts) only: admit (several times at once for a duplicate), then watch it
// until it ends — and when it parks, act as the plan's operator would: break the glass, retry, cancel,
// roll back, wait for the stop-condition to clear, or leave it parked. Every call is bounded and
// retried (`ctx.call`): while a server restarts the harness tries again instead of giving up, and counts it.
//
// This is bookkeeping, not proof: the invariants (chaos/invariants.ts) judge the run from the database
// and from Temporal; what the driver records is the latency a DOT saw and what the operators did.
import {
  type Client, WorkflowFailedError, type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import {
  admitByCode, breakGlass, cancel, DecisionRefusedError, retry, rollback,
} from '../client/admissions.ts';
import { type AdmissionResult, type AdmissionState, admissionWorkflowId, type Blocker } from '../contracts/admission.ts';
import type { Pool } from '../db/pool.ts';
import type { dotBirthAdmit } from '../workflows/index.ts';
import { stateQuery } from '../workflows/messages.ts';
import type { StopCondition } from './faults.ts';
import { dimResolution, type End, LONG_PARK_BUDGET, type PlannedAdmission } from './plan.ts';
import { type Call, describe, isTransient, sleep } from './transient.ts';

export type DriverContext = {
  client: Client;
  taskQueue: string;
  /** An operator's login (birthgate_operator): break-glass opens its ledger entry there. */
  operatorDb: Pool;
  /** Every Temporal call bounded in time and retried while the servers are away (chaos/transient.ts). */
  call: Call;
  /** What each admission being driven is doing now (the run prints the stragglers). */
  phases: Map<number, string>;
  stopCondition: StopCondition;
  seed: string;
  log: (line: string) => void;
  /** How long one admission may take before the harness stops driving it (the invariants still judge it). */
  deadlineMs: number;
};

export type Outcome = {
  index: number;
  kind: PlannedAdmission['kind'];
  code: string;
  /** What the driver saw last; the invariants re-read the truth from Temporal and the database. */
  end: End | 'FAILED' | 'TERMINATED' | 'TIMED_OUT' | 'GAVE_UP';
  detail: string;
  /** admit → FINALIZED as the DOT saw it, for an admission that never needed an operator. */
  latencyMs: number | null;
  parks: number;
  /** Parks on the chaos stop-condition (the fault), and how they ended. */
  dimParks: number;
  dimBreakGlass: number;
  dimCleared: number;
  /** Parks on a blocker no fault of the plan raises (a dim not computed while the database was away). */
  unexpectedParks: number;
  decisions: { retry: number; breakGlass: number; cancel: number; rollback: number; refused: number };
  starts: number;
  /** Runs of the admission (continue-as-new while parked). */
  runs: number;
};

const PARKED = ['BLOCKED', 'COMPENSATION_FAILED'];
/** How long one look waits for the admission to end (a result long-poll) before it checks for a park. */
const WATCH_MS = 1_500;
const operator = (code: string) => ({ actor: 'ops@chaos', reason: `chaos drill for ${code}` });
const isChaosDim = (b: Blocker) => b.kind === 'block_dim' && b.detail.startsWith('chaos_stop_condition');

type Seen =
  | { kind: 'finalized'; result: AdmissionResult }
  | { kind: 'failed'; end: Outcome['end']; detail: string }
  | { kind: 'parked'; state: AdmissionState }
  | { kind: 'running'; why: string };

/**
 * Wait up to `waitMs` for the end (a result long-poll, bounded by a gRPC deadline), else look: parked
 * (memo, then the state query) or still running.
 */
async function observe(client: Client, handle: WorkflowHandle<typeof dotBirthAdmit>, waitMs: number): Promise<Seen> {
  const deadline = Date.now() + waitMs;
  try {
    return { kind: 'finalized', result: await client.withDeadline(deadline, () => handle.result()) };
  } catch (err) {
    if (err instanceof WorkflowFailedError) return failed(err);
    if (Date.now() < deadline) throw err;
  }
  const d = await handle.describe();
  // It ended meanwhile: the next long-poll answers at once.
  if (d.status.name !== 'RUNNING') return { kind: 'running', why: `describe says ${d.status.name}` };
  const memo = d.memo as { stage?: string } | undefined;
  if (!memo?.stage || !PARKED.includes(memo.stage)) return { kind: 'running', why: `memo stage ${memo?.stage ?? 'none'}` };
  let queryError = '';
  const state = await client.withDeadline(Date.now() + 5_000, () => handle.query(stateQuery)).catch((e: unknown) => {
    if (!isTransient(e)) throw e;
    queryError = describe(e);
    return null;
  });
  if (state && PARKED.includes(state.stage) && !state.resuming) return { kind: 'parked', state };
  return { kind: 'running', why: state ? `state ${state.stage}${state.resuming ? ' (resuming)' : ''}` : `state query failed: ${queryError}` };
}

function failed(err: WorkflowFailedError): Seen {
  const c = err.cause;
  if (c instanceof ApplicationFailure) {
    const end: Outcome['end'] = c.type === 'ADMISSION_CANCELLED' ? 'CANCELLED' : c.type === 'ADMISSION_ROLLED_BACK' ? 'ROLLED_BACK' : 'FAILED';
    return { kind: 'failed', end, detail: `${c.type}: ${c.message}` };
  }
  if (c instanceof TerminatedFailure) return { kind: 'failed', end: 'TERMINATED', detail: c.message };
  if (c instanceof TimeoutFailure) return { kind: 'failed', end: 'TIMED_OUT', detail: c.message };
  if (c instanceof CancelledFailure) return { kind: 'failed', end: 'CANCELLED', detail: `workflow cancelled: ${c.message}` };
  return { kind: 'failed', end: 'FAILED', detail: c?.message ?? err.message };
}

export async function drive(a: PlannedAdmission, ctx: DriverContext): Promise<Outcome> {
  const { client, call } = ctx;
  const phase = (what: string) => ctx.phases.set(a.index, `${a.code} (${a.kind}): ${what}`);
  const out: Outcome = {
    index: a.index, kind: a.kind, code: a.code, end: 'GAVE_UP', detail: '', latencyMs: null, parks: 0, dimParks: 0, dimBreakGlass: 0, dimCleared: 0,
    unexpectedParks: 0, decisions: { retry: 0, breakGlass: 0, cancel: 0, rollback: 0, refused: 0 }, starts: 0, runs: 1,
  };
  const input = {
    code: a.code,
    fields: { name: `chaos ${a.code}` },
    requestedBy: 'dot-chaos',
    ...(a.kind === 'longPark' ? { historyBudget: LONG_PARK_BUDGET } : {}),
  };
  const start = () => call(`admit ${a.code}`, async () => {
    out.starts += 1;
    return admitByCode(client, input, { taskQueue: ctx.taskQueue });
  });
  const t0 = Date.now();
  phase('admit');
  // A duplicate: the same admission started several times at once (signal-with-start, USE_EXISTING).
  await Promise.all([start(), ...Array.from({ length: a.extraStarts }, start)]);
  const handle = client.workflow.getHandle<typeof dotBirthAdmit>(admissionWorkflowId('dot_tools', a.code));
  const me = { code: a.code };

  /** An operator's decision; a refusal (or a database refusal of the ledger entry) is counted and looked at again. */
  const decide = async (kind: keyof Outcome['decisions'], fn: () => Promise<unknown>) => {
    phase(kind);
    try {
      await call(`${kind} ${a.code}`, fn);
      out.decisions[kind] += 1;
    } catch (err) {
      if (isTransient(err)) throw err;
      out.decisions.refused += 1;
      if (!(err instanceof DecisionRefusedError)) ctx.log(`${a.code}: ${kind} refused: ${(err as Error).message.split('\n')[0]}`);
      await sleep(500);
    }
  };
  const breakTheGlass = () => decide('breakGlass', () => breakGlass(client, ctx.operatorDb, me, { ...operator(a.code), approvalId: `CHAOS-${a.code}` }));

  if (a.kind === 'cancelRace') {
    // Right after the start: the cancel races the admission; FINALIZED and CANCELLED are both right.
    await call(`cancel ${a.code}`, () => cancel(client, me, operator(a.code))).then(
      () => (out.decisions.cancel += 1),
      (err: unknown) => {
        if (isTransient(err)) throw err;
        out.decisions.refused += 1; // it finalized first (or is past the point a cancel can stop)
      });
  }

  const deadline = t0 + ctx.deadlineMs;
  const epochs = new Set<number>();
  const dimDecided = new Set<number>();
  const unexpectedSeen = new Set<number>();
  let quiet = 0;
  while (Date.now() < deadline) {
    phase('watching');
    const seen = await call(`observe ${a.code}`, () => observe(client, handle, WATCH_MS));
    if (seen.kind === 'finalized') {
      if (out.parks === 0 && out.decisions.cancel === 0 && out.latencyMs === null) out.latencyMs = Date.now() - t0;
      if (a.kind === 'rollbackFinalized') {
        phase('rollback after FINALIZED');
        const r = await call(`rollback ${a.code}`, () => rollback(client, me, operator(a.code), { taskQueue: ctx.taskQueue }));
        out.decisions.rollback += 1;
        return { ...out, end: 'ROLLED_BACK', detail: `born (birth ${seen.result.birthId}), then rolled back via ${r.via}` };
      }
      return { ...out, end: 'FINALIZED', detail: `birth ${seen.result.birthId}${seen.result.breakGlass ? ' (break-glass)' : ''}` };
    }
    if (seen.kind === 'failed') return { ...out, end: seen.end, detail: seen.detail };
    if (seen.kind === 'running') {
      if (++quiet % 40 === 0) ctx.log(`${a.code} (${a.kind}): still running after ${Math.round((Date.now() - t0) / 1000)} s: ${seen.why}`);
      continue;
    }
    quiet = 0;

    const st = seen.state;
    out.runs = st.runs;
    if (!epochs.has(st.parkEpoch)) {
      epochs.add(st.parkEpoch);
      out.parks += 1;
      if (st.blockers.some(isChaosDim)) out.dimParks += 1;
    }
    if (st.stage === 'COMPENSATION_FAILED') {
      // A compensation that could not run (the database away too long): an operator retries it.
      await decide('retry', () => retry(client, me, operator(a.code)));
      continue;
    }
    const unexpected = st.blockers.filter((b) => b.kind !== 'code_rule' && !isChaosDim(b));
    if (unexpected.length > 0 || st.blockers.length === 0) {
      if (!unexpectedSeen.has(st.parkEpoch)) {
        unexpectedSeen.add(st.parkEpoch);
        out.unexpectedParks += 1;
      }
      // A blocker no fault of the plan raises (a dim not computed while the database was cut off, say):
      // an operator looks again a moment later.
      if (out.unexpectedParks % 10 === 1) {
        ctx.log(`${a.code}: parked on ${st.blockers.map((b) => `${b.kind}(${b.detail.slice(0, 80)})`).join(', ') || 'nothing'}; an operator retries`);
      }
      await sleep(1_000);
      await decide('retry', () => retry(client, me, operator(a.code)));
      continue;
    }
    const onDim = st.blockers.some(isChaosDim);
    switch (a.kind) {
      case 'leaveParked':
        return { ...out, end: 'PARKED', detail: st.blockers.map((b) => b.kind).join(', ') };
      case 'cancelParked':
        await decide('cancel', () => cancel(client, me, operator(a.code)));
        break;
      case 'rollbackParked':
        await decide('rollback', () => rollback(client, me, operator(a.code), { taskQueue: ctx.taskQueue }));
        break;
      case 'breakGlass':
        await breakTheGlass();
        break;
      case 'retryThenBreakGlass':
        if (out.decisions.retry === 0) await decide('retry', () => retry(client, me, operator(a.code)));
        else await breakTheGlass();
        break;
      case 'longPark':
        // Looked at again and again until its history passed the budget and it continued as new.
        if (st.runs < 2 && out.decisions.retry < 80) await decide('retry', () => retry(client, me, operator(a.code)));
        else await breakTheGlass();
        break;
      default:
        // A code the family rule accepts parks only on the injected stop-condition. Which way it ends is
        // the seed's choice per code: break-glass, or wait for the condition to clear and retry.
        if (!onDim) break;
        if (!dimDecided.has(st.parkEpoch)) {
          dimDecided.add(st.parkEpoch);
          if (dimResolution(ctx.seed, a.code) === 'breakGlass') out.dimBreakGlass += 1;
          else out.dimCleared += 1;
        }
        if (dimResolution(ctx.seed, a.code) === 'breakGlass') {
          await breakTheGlass();
        } else {
          phase('waiting for the stop-condition to clear');
          await ctx.stopCondition.whenClear();
          // The preflight may reuse the guard's dims for a few seconds (reuse_for): a retry that parks
          // again is tried again.
          await sleep(1_000);
          await decide('retry', () => retry(client, me, operator(a.code)));
        }
    }
  }
  return { ...out, end: 'GAVE_UP', detail: `still running after ${Math.round(ctx.deadlineMs / 1000)} s` };
}

/** The outcome of an admission the harness stopped driving (an unexpected error): Temporal and the database still judge it. */
export function giveUp(a: PlannedAdmission, err: Error): Outcome {
  return {
    index: a.index, kind: a.kind, code: a.code, end: 'GAVE_UP', detail: err.message, latencyMs: null, parks: 0, dimParks: 0, dimBreakGlass: 0,
    dimCleared: 0, unexpectedParks: 0, decisions: { retry: 0, breakGlass: 0, cancel: 0, rollback: 0, refused: 0 }, starts: 0, runs: 1,
  };
}
