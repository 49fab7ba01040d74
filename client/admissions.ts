// The typed admission client DOTs and operators use (the CLI's admission verbs are thin wrappers).
// Every payload is validated with the contract's zod schemas before anything reaches Temporal, so a
// bad input is a clear local error and nothing is started or written.
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type WorkflowHandle,
  type WorkflowExecutionInfo,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { ApplicationFailure, defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import proto from '@temporalio/proto'; // CommonJS: the enums come from its default export
import * as z from 'zod/mini';
import {
  AdmissionInput,
  type AdmissionResult,
  type AttachSignal,
  type AdmissionState,
  admissionWorkflowId,
  BreakGlassSignal,
  CancelSignal,
  CollectionName,
  type DecisionAck,
  DEFAULT_COLLECTION,
  describeIssues,
  EntityCode,
  FailureType,
  RetrySignal,
  RollbackSignal,
  type RollbackResult,
  rollbackWorkflowId,
} from '../contracts/admission.ts';
import { BirthCollection, BirthStage, BreakGlass, EntityCode as EntityCodeKey, PermitId } from '../contracts/search-attributes.ts';
import type { Queryable } from '../db/pool.ts';
import type { dotBirthAdmit, dotBirthRollback } from '../workflows/index.ts';
import { attachSignal, breakGlassUpdate, cancelUpdate, retryUpdate, rollbackUpdate, stateQuery } from '../workflows/messages.ts';

/** A refused input: nothing was sent. */
export class AdmissionInputError extends Error {
  override name = 'AdmissionInputError';
}

/** The admission refused an operator decision (its validator, or once it acted on it): the reason says why. */
export class DecisionRefusedError extends Error {
  override name = 'DecisionRefusedError';
}

/**
 * Send one operator decision as a Workflow Update and return the workflow's answer. A validator's
 * refusal (nothing reached history) and an accepted-then-refused decision both become
 * DecisionRefusedError with the workflow's reason.
 */
async function decide<A>(handle: WorkflowHandle, update: UpdateDefinition<DecisionAck, [A]>, payload: A): Promise<DecisionAck> {
  let ack: DecisionAck;
  try {
    ack = await handle.executeUpdate(update, { args: [payload] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new DecisionRefusedError((err.cause as Error | undefined)?.message ?? err.message);
    throw err;
  }
  if (!ack.accepted) throw new DecisionRefusedError(ack.note);
  return ack;
}

function valid<S extends z.ZodMiniType>(schema: S, raw: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new AdmissionInputError(`${what}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

export const AdmissionRef = z.strictObject({ collection: z._default(CollectionName, DEFAULT_COLLECTION), code: EntityCode });
export type AdmissionRef = z.input<typeof AdmissionRef>;

function handleOf(client: Client, raw: AdmissionRef): { ref: z.output<typeof AdmissionRef>; handle: WorkflowHandle<typeof dotBirthAdmit> } {
  const ref = valid(AdmissionRef, raw, 'admission');
  return { ref, handle: client.workflow.getHandle<typeof dotBirthAdmit>(admissionWorkflowId(ref.collection, ref.code)) };
}

export type Admitted = {
  workflowId: string;
  /** False when the admission had already closed (finalized): the caller attached to its outcome. */
  running: boolean;
  /** With `wait`: the admission's result (every caller for the same code gets the same one). */
  result?: AdmissionResult;
  /** With `wait`: it parked for an operator (BLOCKED or COMPENSATION_FAILED) — its state says why. */
  parked?: AdmissionState;
  /** With `wait` and `timeoutMs`: still running when the time was up. */
  timedOut?: boolean;
  /** It finalized and was rolled back since: the birth is retired (never reported as FINALIZED). */
  rolledBack?: RollbackResult;
};

/** No worker polls the admission's task queue: nothing would run the admission. */
export class NoWorkerError extends Error {
  override name = 'NoWorkerError';
}

const PARKED: readonly string[] = ['BLOCKED', 'COMPENSATION_FAILED'];

/** The dotBirthRollback that undid this admission's birth, when there is one and it completed. */
async function rolledBackBirth(client: Client, collection: string, code: string): Promise<RollbackResult | undefined> {
  const h = client.workflow.getHandle<typeof dotBirthRollback>(rollbackWorkflowId(collection, code));
  try {
    if ((await h.describe()).status.name !== 'COMPLETED') return undefined;
    return await h.result();
  } catch {
    return undefined; // never rolled back
  }
}

async function pollersOf(client: Client, taskQueue: string): Promise<number> {
  const r = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  return r.pollers?.length ?? 0;
}

/** The keys of two field sets whose values differ (a second admit must not silently attach). */
function fieldDifference(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => JSON.stringify(a[k] ?? null) !== JSON.stringify(b[k] ?? null));
}

/**
 * Wait until the admission finalizes, parks for an operator, or the time is up — never block silently
 * on a stuck birth.
 */
async function waitForOutcome(
  client: Client,
  handle: WorkflowHandle<typeof dotBirthAdmit>,
  timeoutMs: number | undefined,
): Promise<Pick<Admitted, 'result' | 'parked' | 'timedOut'>> {
  // The outcome comes from a result() long-poll, which the server answers the moment the admission
  // completes (a clean one in well under PARK_WATCH_FIRST_MS, so it is never queried). Beside it, a
  // slow watch asks the workflow whether it parked; a park, or the deadline, aborts the long-poll, so
  // a caller who gets a park back leaves nothing pending on its connection.
  const stop = new AbortController();
  const ended = client
    .withAbortSignal(stop.signal, () => handle.result())
    .then((result) => ({ result }), (err: unknown) => {
      if (stop.signal.aborted) return new Promise<never>(() => undefined); // the watch answered first
      throw err;
    });
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  const watch = (async (): Promise<Pick<Admitted, 'parked' | 'timedOut'>> => {
    for (let pause = PARK_WATCH_FIRST_MS; ; pause = Math.min(pause * 2, 1000)) {
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(pause, deadline - Date.now()))));
      if (stop.signal.aborted) return new Promise<never>(() => undefined);
      if (Date.now() >= deadline) return { timedOut: true };
      // The memo says when it parked (the workflow upserts it at a park): describe is answered by the
      // server alone, so a busy admission is not queried — a query is work for the worker. Only a
      // parked one is queried, to see that it is not already resuming.
      const memo = (await handle.describe().catch(() => null))?.memo as { stage?: string } | undefined;
      if (!memo?.stage || !PARKED.includes(memo.stage)) continue;
      const state = await client.withDeadline(Date.now() + 5_000, () => handle.query(stateQuery)).catch(() => null);
      if (stop.signal.aborted) return new Promise<never>(() => undefined);
      if (state && PARKED.includes(state.stage) && !state.resuming) return { parked: state };
    }
  })();
  try {
    return await Promise.race([ended, watch]);
  } finally {
    stop.abort();
  }
}

/**
 * The first park check of `admit --wait` comes this late, then one a second: a clean admission has
 * answered by then, even under load, and a person waiting on a park does not notice the second. Each
 * check is a describe for the server: with a 250 ms start, an admission that took 1.5 s under load
 * (50 in flight) paid three of them.
 */
const PARK_WATCH_FIRST_MS = 1000;

/**
 * Admit `code` into its collection. First a plain start with the conflict policy FAIL: the common case,
 * the first caller, starts the admission and knows it did — no attach signal, no describe. When the id is
 * taken (running, or closed and final), signal-with-start with USE_EXISTING: every later or concurrent
 * caller attaches to the running admission in one atomic call — never a second birth. A finalized admission is final (ALLOW_DUPLICATE_FAILED_ONLY); a cancelled or failed one may be
 * admitted afresh. (Update-with-start was the first choice, for its synchronous answer; under 20
 * concurrent callers the dev server answered some with "StartDeduped" after ~25 s of retries.)
 */
export async function admitByCode(
  client: Client,
  raw: AdmissionInput,
  opts: { taskQueue: string; wait?: boolean; timeoutMs?: number; requireWorker?: boolean },
): Promise<Admitted> {
  const input = valid(AdmissionInput, raw, 'admission');
  const workflowId = admissionWorkflowId(input.collection, input.code);
  if (opts.requireWorker && (await pollersOf(client, opts.taskQueue)) === 0) {
    throw new NoWorkerError(`no worker polls task queue ${opts.taskQueue}: nothing would run the admission (start one with \`birthgate worker\`)`);
  }
  const calledAt = Date.now();
  const options = {
    workflowId,
    taskQueue: opts.taskQueue,
    args: [input] as [AdmissionInput],
    workflowIdConflictPolicy: 'USE_EXISTING' as const,
    workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY' as const,
    // No BirthStage at start: the workflow sets it when the birth needs a human (a park, a failure)
    // and follows it from there; a clean admission carries none (admission-record.ts).
    typedSearchAttributes: [
      { key: EntityCodeKey, value: input.code },
      { key: BirthCollection, value: input.collection },
      { key: BreakGlass, value: false },
    ],
    staticSummary: `Birth admission of ${input.collection} \`${input.code}\``,
    staticDetails: `dot-birth-admit: preflight → permit → insert under the permit → finalize. Requested by ${input.requestedBy}.`,
  };

  let running = true;
  let handle: WorkflowHandle<typeof dotBirthAdmit> | undefined;
  try {
    // The requester is in the input (the workflow records it at start), so a first caller needs no attach
    // signal; one RPC fewer for the server than signal-with-start plus a describe, and no signal event.
    handle = await client.workflow.start<typeof dotBirthAdmit>('dotBirthAdmit', { ...options, workflowIdConflictPolicy: 'FAIL' });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  const startedHere = handle !== undefined;
  if (!handle) {
    try {
      handle = await client.workflow.signalWithStart<typeof dotBirthAdmit, [AttachSignal]>('dotBirthAdmit', {
        ...options,
        signal: attachSignal,
        signalArgs: [{ requestedBy: input.requestedBy }],
      });
    } catch (err) {
      // Closed and final (finalized): attach to what it ended with — unless it was rolled back since.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      handle = client.workflow.getHandle<typeof dotBirthAdmit>(workflowId);
      running = false;
      const rolledBack = await rolledBackBirth(client, input.collection, input.code);
      if (rolledBack) return { workflowId, running, rolledBack };
    }
  }
  if (running && !startedHere) {
    // Attached to one that was already running: it must be the same request, field for field.
    const d = await handle.describe();
    if (d.startTime.getTime() < calledAt - 1_000) {
      const state = await client.withDeadline(Date.now() + 5_000, () => handle.query(stateQuery)).catch(() => null);
      const differ = state?.fields ? fieldDifference(state.fields, input.fields) : [];
      if (differ.length) {
        throw new AdmissionInputError(`an admission of ${input.collection}/${input.code} is already running with other fields (${differ.join(', ')}): not attached; wait for it or cancel it first`);
      }
    }
  }
  const admitted: Admitted = { workflowId, running };
  if (opts.wait) Object.assign(admitted, await waitForOutcome(client, handle, opts.timeoutMs));
  return admitted;
}

export type AdmissionStatus = {
  workflowId: string;
  runId: string;
  status: string;
  state: AdmissionState | null;
  /** Finalized, then rolled back by dotBirthRollback: the birth is retired. */
  rolledBack?: RollbackResult;
};

/** Describe from the server; the full state from the workflow (null when no worker answers in time). */
export async function status(client: Client, raw: AdmissionRef, opts: { queryTimeoutMs?: number } = {}): Promise<AdmissionStatus> {
  const { handle } = handleOf(client, raw);
  const d = await handle.describe();
  const state = await client.withDeadline(Date.now() + (opts.queryTimeoutMs ?? 10_000), () => handle.query(stateQuery)).catch(() => null);
  const out: AdmissionStatus = { workflowId: d.workflowId, runId: d.runId, status: d.status.name, state };
  if (d.status.name === 'COMPLETED' && state) {
    const rolledBack = await rolledBackBirth(client, state.collection, state.code);
    if (rolledBack) out.rolledBack = rolledBack;
  }
  return out;
}

export async function retry(client: Client, ref: AdmissionRef, raw: RetrySignal): Promise<DecisionAck> {
  const payload = valid(RetrySignal, raw, 'retry');
  return decide(handleOf(client, ref).handle, retryUpdate, payload);
}

const BreakGlassRequest = z.omit(BreakGlassSignal, { breakGlassId: true, parkEpoch: true });
export type BreakGlassRequest = z.input<typeof BreakGlassRequest>;

/**
 * Break the glass for a stuck birth (SECURITY.md): first the operator's act in the database — the
 * ledger entry, opened by fn_break_glass_open on `operatorDb` (a connection whose role is a member of
 * birthgate_operator; the worker's role is refused), bound to the permit the stuck birth holds and
 * recording who really opened it — then the signal that names the entry. The database refuses a
 * break-glass past the kill switch or gate_drift (BG423), for a permit that is not parked (BG403),
 * or with another approval already on the permit (BG409).
 */
export async function breakGlass(client: Client, operatorDb: Queryable, ref: AdmissionRef, raw: BreakGlassRequest): Promise<DecisionAck & { breakGlassId: string }> {
  const payload = valid(BreakGlassRequest, raw, 'break-glass');
  const { ref: r, handle } = handleOf(client, ref);
  const state = await handle.query(stateQuery);
  if (state.stage !== 'BLOCKED' || !state.permit) {
    throw new DecisionRefusedError(`${r.code} is ${state.stage}${state.permit ? '' : ' without a permit'}: break-glass applies only to a stuck birth (BLOCKED) holding its permit`);
  }
  const { rows } = await operatorDb.query<{ id: string }>(
    'SELECT (fn_break_glass_open($1, $2, $3, $4, $5, $6::bigint, $7)).break_glass_id AS id',
    [r.code, r.collection, payload.actor, payload.reason, payload.approvalId, state.permit.permitId, handle.workflowId],
  );
  const breakGlassId = String(rows[0]!.id);
  const ack = await decide(handle, breakGlassUpdate, { ...payload, breakGlassId, parkEpoch: state.parkEpoch });
  return { ...ack, breakGlassId };
}

export async function cancel(client: Client, ref: AdmissionRef, raw: CancelSignal): Promise<DecisionAck> {
  const payload = valid(CancelSignal, raw, 'cancel');
  return decide(handleOf(client, ref).handle, cancelUpdate, payload);
}

export type RolledBack =
  | { via: 'signal'; stage: 'ROLLED_BACK'; workflowId: string }
  | ({ via: 'dotBirthRollback' } & RollbackResult);

/**
 * Undo an admission. While it runs: the `rollback` signal (compensations in reverse). Once it has
 * finalized and completed: the dotBirthRollback workflow retires the birth. A signal that races the
 * completion is caught the same way: the admission's outcome decides.
 */
export async function rollback(client: Client, rawRef: AdmissionRef, raw: RollbackSignal, opts: { taskQueue: string }): Promise<RolledBack> {
  const payload = valid(RollbackSignal, raw, 'rollback');
  const { ref, handle } = handleOf(client, rawRef);
  const d = await handle.describe();
  if (d.status.name === 'RUNNING') {
    try {
      await decide(handle, rollbackUpdate, payload);
    } catch (err) {
      // It completed between the describe and the update: its outcome decides below. Any other
      // refusal (a failed compensation waiting for an operator) goes back to the caller at once.
      if ((await handle.describe()).status.name === 'RUNNING') throw err;
    }
  }

  let admitted: AdmissionResult;
  try {
    admitted = await handle.result();
  } catch (err) {
    const type = err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure ? err.cause.type : undefined;
    if (type === FailureType.ADMISSION_ROLLED_BACK) return { via: 'signal', stage: 'ROLLED_BACK', workflowId: handle.workflowId };
    throw new Error(`nothing to roll back: the admission of ${ref.collection}/${ref.code} did not finalize (${(err as Error).message})`);
  }
  const rolledBack = await client.workflow.execute<typeof dotBirthRollback>('dotBirthRollback', {
    workflowId: rollbackWorkflowId(ref.collection, ref.code),
    taskQueue: opts.taskQueue,
    args: [{ collection: ref.collection, code: ref.code, permitId: admitted.permitId, actor: payload.actor, reason: payload.reason }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `Rollback of the birth of ${ref.collection} \`${ref.code}\``,
  });
  return { via: 'dotBirthRollback', ...rolledBack };
}

export type StuckBirth = {
  workflowId: string;
  collection: string;
  code: string;
  /** BirthStage as the admission last set it ('' when it never set one). */
  stage: string;
  /** Why it waits for an operator: parked (its stage), its workflow task keeps failing, or both. */
  why: StuckReason[];
  /** TemporalReportedProblems while its workflow task keeps failing (`category=…`, `cause=…`); [] otherwise. */
  taskProblems: string[];
  /** The permit a stuck birth holds its place with (REQUESTED while BLOCKED); null when it holds none. */
  permitId: string | null;
  since: string | null;
  waitingFor: string | null;
  blockers: string[];
  startTime: string;
};

export type StuckReason = 'BLOCKED' | 'COMPENSATION_FAILED' | 'WORKFLOW_TASK_FAILING';

const PARKED_CLAUSE = `BirthStage IN ('BLOCKED', 'COMPENSATION_FAILED')`;
// The server sets TemporalReportedProblems after N consecutive workflow task failures or timeouts
// (system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute, stack/temporal.ts) and clears it
// on the next completed task. Such an admission is stuck (a nondeterminism error after a bad deploy,
// a bundle that does not load) though its BirthStage still says what it said before.
const TASK_FAILING_CLAUSE = `TemporalReportedProblems IN ('category=WorkflowTaskFailed', 'category=WorkflowTaskTimedOut')`;
/** The visibility query of every stuck birth: `birthgate stuck`, and the Web UI's view (README "Stuck births in the Web UI"). */
export const STUCK_BIRTHS_QUERY = `WorkflowType = 'dotBirthAdmit' AND ExecutionStatus = 'Running' AND (${PARKED_CLAUSE} OR ${TASK_FAILING_CLAUSE})`;
const ReportedProblems = defineSearchAttributeKey('TemporalReportedProblems', SearchAttributeType.KEYWORD_LIST);

/**
 * Stuck births, from visibility (no per-workflow query): admissions parked for an operator —
 * BLOCKED on a stop-condition, or COMPENSATION_FAILED — and admissions whose workflow task keeps
 * failing. `olderThanMs` counts from when they parked (from their start when they never parked).
 */
export async function listStuck(client: Client, opts: { olderThanMs?: number; now?: Date } = {}): Promise<StuckBirth[]> {
  const now = opts.now ?? new Date();
  // Parked after it started, so "parked for ≥ d" implies "started ≥ d ago": a server-side pre-filter.
  const startedBefore = opts.olderThanMs ? ` AND StartTime <= '${new Date(now.getTime() - opts.olderThanMs).toISOString()}'` : '';
  let found: WorkflowExecutionInfo[];
  try {
    found = await collect(client, STUCK_BIRTHS_QUERY + startedBefore);
  } catch (err) {
    // A server older than 1.30 has no TemporalReportedProblems: the parked ones are still worth listing.
    if (!/TemporalReportedProblems/.test((err as Error).message)) throw err;
    found = await collect(client, `WorkflowType = 'dotBirthAdmit' AND ExecutionStatus = 'Running' AND ${PARKED_CLAUSE}${startedBefore}`);
  }
  const stuck: StuckBirth[] = [];
  for (const w of found) {
    const memo = (w.memo ?? {}) as { since?: string; waitingFor?: string | null; blockers?: string[] };
    const since = memo.since ?? null;
    if (opts.olderThanMs && since && now.getTime() - Date.parse(since) < opts.olderThanMs) continue;
    const stage = String(w.typedSearchAttributes.get(BirthStage) ?? '');
    const taskProblems = w.typedSearchAttributes.get(ReportedProblems) ?? [];
    const why: StuckReason[] = [];
    if (stage === 'BLOCKED' || stage === 'COMPENSATION_FAILED') why.push(stage);
    if (taskProblems.length > 0) why.push('WORKFLOW_TASK_FAILING');
    stuck.push({
      workflowId: w.workflowId,
      collection: String(w.typedSearchAttributes.get(BirthCollection) ?? ''),
      code: String(w.typedSearchAttributes.get(EntityCodeKey) ?? ''),
      stage,
      why,
      taskProblems,
      permitId: w.typedSearchAttributes.get(PermitId) ?? null,
      since,
      waitingFor: memo.waitingFor ?? null,
      blockers: memo.blockers ?? [],
      startTime: w.startTime.toISOString(),
    });
  }
  return stuck;
}

async function collect(client: Client, query: string): Promise<WorkflowExecutionInfo[]> {
  const all: WorkflowExecutionInfo[] = [];
  for await (const w of client.workflow.list({ query })) all.push(w);
  return all;
}
