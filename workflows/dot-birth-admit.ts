// dotBirthAdmit — the sequential DOT `dot-birth-admit` (KB-35E7 §1, KB-3A66 §8, DESIGN §4) as a
// durable workflow: preflight → permit → insert under the permit (COMMIT fires the deferred
// finalize) → confirm finalize → result. A stop-condition parks it as a stuck birth for an
// operator; a failure, a cancellation or an operator rollback runs the compensations in reverse.
//
// Deterministic: no I/O here, time and ids only from the workflow sandbox; every side effect is an
// activity (activities/). Each step runs to its end even when a cancel arrives meanwhile (steps are
// short SQL calls), so compensations always see what really committed.
//
// One workflow per (collection, code): admissionWorkflowId() derives the id, the client starts with
// USE_EXISTING (attach to the running one) and ALLOW_DUPLICATE_FAILED_ONLY (a finalized admission is
// final; a cancelled or failed one may be admitted afresh). The permit's idempotency key is the
// workflow id qualified by the first run id, so each fresh admission of a code gets its own permit
// while every retry within one admission gets the same one.
//
// A stuck birth holds its place in the permit ledger: before it parks it requests its permit
// (REQUESTED, fn_permit_request), so an operator sees a permit id while it waits and a cancel leaves
// that permit CANCELLED. When the stop-conditions clear or the glass is broken, issuePermit with the
// same key reserves that same permit. A clean admission never sees REQUESTED: one fn_permit_issue.
//
// Rollback after FINALIZED: the workflow completes as soon as the birth is finalized (callers that
// wait get their answer at once and no workflow lingers per birth). A later rollback is the separate
// small workflow dotBirthRollback, which the client starts with the finalized permit id; a rollback
// signal while the admission still runs is handled here.
import {
  allHandlersFinished, ApplicationFailure, CancellationScope, CancelledFailure, condition, ContinueAsNew, continueAsNew, isCancellation, patched, workflowInfo,
} from '@temporalio/workflow';
import {
  admissionClear,
  AdmissionInput,
  admissionWorkflowId,
  type AdmissionRequest,
  type AdmissionResult,
  type BreakGlassSignal,
  breakGlassOverridable,
  describeIssues,
  FailureType,
  type PermitView,
  type PreflightReport,
  type Stage,
} from '../contracts/admission.ts';
import { AdmissionRecord, describeBlocker } from './admission-record.ts';
import { type ActivityMode, admissionActivities, type AdmissionSteps } from './activity-options.ts';
import { Compensations, type UndoContext } from './compensations.ts';
import { type Abort, OperatorInbox, type Resume } from './operator-inbox.ts';

export function dotBirthAdmit(raw: AdmissionInput): Promise<AdmissionResult> {
  return admit(raw, 'remote');
}

/** The same admission with its SQL steps as local activities (benchmark variant; see activity-options.ts). */
export function dotBirthAdmitLocal(raw: AdmissionInput): Promise<AdmissionResult> {
  return admit(raw, 'local');
}

async function admit(raw: AdmissionInput, mode: ActivityMode): Promise<AdmissionResult> {
  const input = validInput(raw);
  const { workflowId, runId, firstExecutionRunId } = workflowInfo();
  // One admission per (collection, code): under any other id — another client, the Temporal CLI,
  // another SDK — a second admission of the same code could run beside the first.
  if (workflowId !== admissionWorkflowId(input.collection, input.code)) {
    throw ApplicationFailure.create({
      type: FailureType.INVALID_INPUT, nonRetryable: true,
      message: `an admission of ${input.collection}/${input.code} runs only as ${admissionWorkflowId(input.collection, input.code)}, not ${workflowId}`,
    });
  }
  // A lean admission (issue 8 §6): the short SQL steps as local activities (activity-options.ts), the
  // stage upserted only when a human needs it (admission-record.ts). Histories from before run as they did.
  const lean = patched('lean-admission');
  const record = new AdmissionRecord(workflowId, input, { lean });
  const inbox = new OperatorInbox(record);
  const undo = new Compensations(record, inbox);
  const acts = admissionActivities(input.permitTtlSeconds, mode === 'remote' && lean ? 'lean' : mode);
  const { openAdmission, requestPermit, issuePermit, insertGovernedRow, confirmFinalized, withdrawPermit, retireBirth } = acts;
  // requestPermit and issuePermit: the same key and parameters, so both answer with the same permit.
  const permitParams = {
    idempotencyKey: `${workflowId}#${firstExecutionRunId}`,
    collection: input.collection,
    code: input.code,
    ttlSeconds: input.permitTtlSeconds,
    actor: input.requestedBy,
    workflowId,
    runId,
  };
  // Record the permit and register its withdrawal once per permit id, inside the step that got it:
  // a cancel that arrived meanwhile is honoured only after the compensation is in place.
  const withdrawRegistered = new Set<string>();
  const holdPermit = (permit: PermitView): PermitView => {
    record.permitHeld(permit);
    if (!withdrawRegistered.has(permit.permitId)) {
      withdrawRegistered.add(permit.permitId);
      undo.add('withdraw permit', (ctx) => withdrawPermit({ permitId: permit.permitId, to: ctx.permitTo, actor: ctx.actor, reason: ctx.reason }));
    }
    return permit;
  };
  record.enter('PREFLIGHT', 'the stop-condition checks');
  // A run that continues a parked admission holds the permit its first run requested: its withdrawal
  // is this run's compensation too.
  if (record.state.permit) holdPermit(record.state.permit);

  try {
    // 1. preflight — a stop-condition parks the admission until an operator decides; the stuck
    //    birth holds its place with a REQUESTED permit meanwhile.
    //    Since patched('open-admission') the first check is openAdmission: the same stop-conditions
    //    and, when they are clear, the RESERVED permit of step 2 in the same SQL call (one local
    //    activity instead of two). A permit it answers with is held, and its withdrawal registered, in
    //    that step, as issuePermit's is; a later check (a park's re-read, a retry) is a plain preflight.
    const opened: { permit: PermitView | null } = { permit: null };
    const firstCheck = patched('open-admission')
      ? async () => {
        const o = await openAdmission(permitParams);
        if (o.permit) holdPermit(o.permit);
        if (o.permit?.state === 'RESERVED' && admissionClear(o.report)) opened.permit = o.permit;
        return o.report;
      }
      : undefined;
    const requestPlace = () => step(inbox, async () => holdPermit(await requestPermit(permitParams)));
    const breakGlass = await clearStopConditions(record, inbox, input, acts, requestPlace, firstCheck);

    // 2. permit — RESERVED for exactly (code, collection), with a TTL (a REQUESTED one is reserved now).
    //    Already reserved by the first check when nothing stopped the admission.
    const permit = opened.permit ?? await step(inbox, async () => holdPermit(await issuePermit(permitParams)));
    if (permit.state !== 'RESERVED') {
      throw ApplicationFailure.create({ type: FailureType.PERMIT_UNUSABLE, message: `permit ${permit.permitId} came back ${permit.state}`, nonRetryable: true });
    }
    record.enter('PERMIT_ISSUED', 'the governed insert', `permit ${permit.permitId} RESERVED until ${permit.expiresAt}`);

    // 3. insert under the permit; its COMMIT fires the deferred finalize. Registered first: an
    //    insert whose acknowledgement is lost has still committed.
    undo.add('remove row and retire birth', (ctx) => retireBirth({ permitId: permit.permitId, actor: ctx.actor, reason: ctx.reason }));
    record.enter('INSERTING', `the ${input.collection} insert under permit ${permit.permitId}`);
    const row = await step(inbox, () =>
      insertGovernedRow({
        permitId: permit.permitId,
        collection: input.collection,
        code: input.code,
        fields: input.fields,
        breakGlass: breakGlass && {
          actor: breakGlass.actor, reason: breakGlass.reason, approvalId: breakGlass.approvalId, workflowId,
          breakGlassId: breakGlass.breakGlassId ?? null,
        },
      }),
    );
    record.inserted(row.rowId, row.breakGlassId);

    // 4. confirm finalize — permit FINALIZED, row and birth linked.
    record.enter('FINALIZING', `confirmation that permit ${permit.permitId} is FINALIZED and its birth linked`);
    const ledger = await step(inbox, () => confirmFinalized({ permitId: permit.permitId }));

    // 5. result
    const born = record.born(ledger.permit, ledger.birthId!, ledger.birthStatus);
    inbox.settleRemaining('the admission is FINALIZED');
    return born;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err; // the park goes on in the next run; nothing to undo
    const failure = await unwind(err, record, undo, input);
    inbox.settleRemaining(`the admission ended ${record.stage}`);
    throw failure;
  }
}

// ───────────────────────────── stop-conditions ─────────────────────────────

/**
 * Loop preflight until clear (→ null) or an operator breaks the glass (→ the approval). Before it
 * first parks, the stuck birth requests its permit (`requestPlace`), unless the collection is not
 * managed: the ledger refuses a permit for a table the gate cannot guard (BG400), so such a birth
 * parks without one until an operator retries.
 */
async function clearStopConditions(
  record: AdmissionRecord,
  inbox: OperatorInbox,
  input: AdmissionRequest,
  { preflight }: AdmissionSteps,
  requestPlace: () => Promise<unknown>,
  firstCheck?: () => Promise<PreflightReport>,
): Promise<BreakGlassSignal | null> {
  const checkNow = () => preflight({ collection: input.collection, code: input.code });
  for (let n = 0; ; n++) {
    const report = await step(inbox, n === 0 && firstCheck ? firstCheck : checkNow);
    // Issue 8 §4: a code already born in the collection (its row live) can only fail on the table's
    // uniqueness: say which birth it is instead of trying. Nothing was admitted; a permit held from a
    // park is withdrawn on the way out.
    if (report.alreadyBorn && patched('already-born')) {
      const b = report.alreadyBorn;
      throw ApplicationFailure.create({
        type: FailureType.ALREADY_BORN, nonRetryable: true, details: [b],
        message: `${input.collection}/${input.code} is already born: birth ${b.birthId} (${b.status}), row ${b.rowId}`,
      });
    }
    if (report.blockers.length === 0) return null;
    record.blocked(report.blockers);
    if (record.state.permit === null && report.collectionManaged) await requestPlace();
    record.enter('BLOCKED', 'an operator: retry, cancel or break-glass', report.blockers.map(describeBlocker).join('; '));
    const decision = await awaitOperator(record, inbox, checkNow, input);
    if (decision === 'cleared') return null;
    if (decision.kind === 'breakGlass') {
      record.breakGlassGranted({ actor: decision.actor, reason: decision.reason, approvalId: decision.approvalId });
      return decision;
    }
    record.enter('PREFLIGHT', 'the stop-condition checks', `retry by ${decision.actor}`);
  }
}

/**
 * A stuck birth waits here, without polling. Right after it starts waiting it re-reads the
 * stop-conditions once, so a condition cleared (or a decision sent) just before the wait is not missed.
 */
async function awaitOperator(
  record: AdmissionRecord,
  inbox: OperatorInbox,
  checkNow: () => ReturnType<AdmissionSteps['preflight']>,
  rawInput: AdmissionRequest,
): Promise<'cleared' | Resume> {
  const budget = rawInput.historyBudget;
  let cleared = false;
  const epoch = record.state.parkEpoch;
  void CancellationScope.nonCancellable(checkNow).then(
    (report) => {
      // A re-read that answers after this park ended (or a later one began) is stale: never let it
      // overwrite the blockers a newer park showed.
      if (record.stage !== 'BLOCKED' || record.state.parkEpoch !== epoch) return;
      if (report.blockers.length === 0) cleared = true;
      else record.blocked(report.blockers);
    },
    () => undefined, // the operator can still retry; a failed re-read changes nothing
  );
  for (;;) {
    await inbox.until(() => cleared || historyFull(budget));
    if (inbox.abort) throw new OperatorAbort(inbox.abort);
    if (!cleared && !inbox.pending() && historyFull(budget) && patched('park-continue-as-new')) {
      // Bounded history (issue 8): a birth parked for weeks, retried and attached to, continues as
      // new with its permit, blockers, park epoch and the tails of its log; updates in flight finish first.
      await condition(allHandlersFinished);
      await continueAsNew<typeof dotBirthAdmit>({ ...rawInput, carry: record.carry() });
    }
    const decision = inbox.nextResume();
    if (!decision) {
      record.decided({ kind: 'retry', actor: 'birthgate', reason: null, accepted: true, note: 'stop-condition cleared on re-read' });
      return 'cleared';
    }
    if (decision.kind === 'retry') {
      inbox.settle(decision, true, 'preflight re-run');
      return decision;
    }
    // SECURITY.md: break-glass is an operator's act in the database first (fn_break_glass_open, which
    // only birthgate_operator may call); a signal that names no ledger entry is refused here.
    if (patched('break-glass-needs-ledger-entry') && !decision.breakGlassId) {
      inbox.settle(decision, false, 'break-glass needs its ledger entry: an operator opens it with `birthgate break-glass` (fn_break_glass_open)');
      continue;
    }
    if (decision.parkEpoch !== undefined && decision.parkEpoch !== record.state.parkEpoch) {
      inbox.settle(decision, false, `it answers park ${decision.parkEpoch}; the admission is in park ${record.state.parkEpoch}`);
      continue;
    }
    // Act on fresh stop-conditions, not on what the operator saw: a blocker that turned hard meanwhile
    // (kill switch, gate_drift) refuses the break-glass; one that cleared needs no break-glass.
    if (patched('fresh-preflight-before-break-glass')) {
      const fresh = await step(inbox, checkNow);
      record.blocked(fresh.blockers);
      if (fresh.blockers.length === 0) {
        // The permit carries the operator's entry either way: admitted under it, on the record.
        inbox.settle(decision, true, `the stop-conditions cleared meanwhile; admitted under approval ${decision.approvalId} (entry ${decision.breakGlassId})`);
        return decision;
      }
    }
    const hard = record.state.blockers.filter((b) => b.hard === true || !breakGlassOverridable.includes(b.kind));
    if (hard.length > 0) {
      inbox.settle(decision, false, `break-glass cannot override ${hard.map((b) => b.kind).join(', ')}`);
      continue;
    }
    inbox.settle(decision, true, `admitted past ${record.state.blockers.map((b) => b.kind).join(', ')} under approval ${decision.approvalId}`);
    return decision;
  }
}

// ───────────────────────────── steps, aborts and compensation ─────────────────────────────

class OperatorAbort extends Error {
  constructor(readonly abort: Abort) {
    super(`${abort.kind} by ${abort.actor}: ${abort.reason}`);
  }
}

/** A step runs to its end; a cancel or operator abort that came meanwhile is honoured right after. */
async function step<T>(inbox: OperatorInbox, fn: () => Promise<T>): Promise<T> {
  const result = await CancellationScope.nonCancellable(fn);
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('admission cancelled');
  if (inbox.abort) throw new OperatorAbort(inbox.abort);
  return result;
}

/** Compensate in reverse, settle the final stage, and return what the workflow ends with. */
async function unwind(err: unknown, record: AdmissionRecord, undo: Compensations, input: AdmissionRequest): Promise<unknown> {
  const abort = err instanceof OperatorAbort ? err.abort : null;
  const cancelled = isCancellation(err);
  const message = failureMessage(err);
  const outcome: Stage = cancelled || abort?.kind === 'cancel' ? 'CANCELLED' : abort ? 'ROLLED_BACK' : 'FAILED';
  const ctx: UndoContext = {
    permitTo: outcome === 'FAILED' ? 'FAILED' : 'CANCELLED',
    actor: abort?.actor ?? input.requestedBy,
    reason: (abort?.reason ?? (cancelled ? 'workflow cancelled' : message)).slice(0, 2000),
  };
  if (outcome === 'FAILED') record.failed(FailureType.ADMISSION_FAILED, message);

  const compensated = undo.size > 0;
  await undo.runAll(ctx);
  record.enter(outcome, null, ctx.reason);

  if (cancelled) return err;
  const type = outcome === 'CANCELLED' ? FailureType.ADMISSION_CANCELLED : outcome === 'ROLLED_BACK' ? FailureType.ADMISSION_ROLLED_BACK : FailureType.ADMISSION_FAILED;
  return ApplicationFailure.create({
    type,
    message: abort ? (err as Error).message : `admission failed${compensated ? ' (compensated)' : ''}: ${message}`,
    nonRetryable: true,
    details: [{ stage: outcome, code: input.code, collection: input.collection, permitId: record.state.permit?.permitId ?? null }],
    cause: abort ? undefined : (err as Error),
  });
}

function failureMessage(err: unknown): string {
  let e: unknown = err;
  const parts: string[] = [];
  while (e instanceof Error) {
    const type = e instanceof ApplicationFailure && e.type ? `${e.type}: ` : '';
    parts.push(`${type}${e.message}`);
    e = e.cause;
  }
  return parts.filter((p) => p && !p.startsWith('Activity task failed')).join(' ← ') || String(err);
}

function validInput(raw: unknown): AdmissionRequest {
  const parsed = AdmissionInput.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw ApplicationFailure.create({ type: FailureType.INVALID_INPUT, message: `invalid admission: ${describeIssues(parsed.error)}`, nonRetryable: true });
}

/** Past the budget, or the server suggests it: time to continue as new (checked while parked). */
function historyFull(budget: number): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength >= budget;
}
