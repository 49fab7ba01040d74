// Retry policies, chosen per activity (DESIGN §4). Every SQL step is short, so startToClose is small
// and the schedule-to-close budget is what bounds an outage. Refusals the database makes on purpose
// are never retried: nonRetryableErrorTypes lists every FailureType except DATABASE_UNAVAILABLE and
// DATABASE_ERROR (connection loss, shutdown, deadlock, lock or statement timeout, unexpected SQLSTATE).
//
// | activity            | startToClose | scheduleToClose   | backoff            | never retried                 | why the budget                                  |
// |---------------------|--------------|-------------------|--------------------|-------------------------------|-------------------------------------------------|
// | preflight           | 10 s         | 10 min            | 0.5 s ×2 → 30 s    | INVALID_INPUT (BG400)         | read-only; waiting out an outage is harmless    |
// | openAdmission       | 10 s         | 10 min            | 0.5 s ×2 → 30 s    | BG400, PERMIT_CONFLICT (BG409)| preflight's; the permit it may issue is idempotent on the key |
// | requestPermit       | 10 s         | 5 min             | 0.5 s ×2 → 30 s    | BG400, PERMIT_CONFLICT (BG409)| idempotent on the key; conflict needs a human   |
// | issuePermit         | 10 s         | 5 min             | 0.5 s ×2 → 30 s    | BG400, PERMIT_CONFLICT (BG409)| idempotent on the key; conflict needs a human   |
// | insertGovernedRow   | 10 s         | 80 % of permit TTL| 0.5 s ×2 → 30 s    | GATE_REFUSED (BG403), BG400…  | must land before the permit expires             |
// | confirmFinalized    | 10 s         | 5 min             | 0.5 s ×2 → 30 s    | FINALIZE_NOT_CONFIRMED        | a committed insert that did not finalize is a bug|
// | withdrawPermit      | 10 s         | 2 min             | 1 s ×2 → 30 s      | ILLEGAL_TRANSITION (BG422)    | then COMPENSATION_FAILED parks for an operator  |
// | retireBirth         | 10 s         | 2 min             | 1 s ×2 → 30 s      | BG400, PRECONDITION (BG428)   | then COMPENSATION_FAILED parks for an operator  |
//
// A killed worker costs one startToClose (10 s) before the attempt is retried elsewhere.
//
// Where each step runs (issue 8 §6, behind patched('lean-admission')): the short SQL steps whose
// repetition is harmless run as LOCAL activities, in the workflow task that needs them — no activity
// task, no round trip to the server, one marker event each; a re-run after a crash or a lost workflow
// task is as safe as a retry:
//   - preflight: reads (it may refresh the drift guard's stored dims, which any caller may do);
//   - requestPermit, issuePermit: idempotent on the permit key — a re-run answers with the same permit;
//     the permit's withdrawal is registered when its answer is recorded, as before;
//   - openAdmission (patched('open-admission')): preflight's read and issuePermit's write in one
//     transaction, so both reasons hold; a re-run that is stopped where the first run was not still
//     answers with the permit the key holds, which the workflow then holds and withdraws;
//   - confirmFinalized, readAdmission: read the ledger.
// The governed insert, and the compensations, stay REMOTE activities:
//   - the insert is the one step that writes the row. As an activity task its attempt is timed by the
//     server, survives the loss of the worker that ran it, is cancelled through its heartbeats (the
//     statement guard cancels the backend: a step Temporal gave up on never commits after the
//     compensations ran), is bounded by the worker's activity slots (the pool's size) and shows in
//     the history as its own scheduled/started/completed events with its attempt count;
//   - withdrawPermit and retireBirth run on the failure path, where a long retry (COMPENSATION_FAILED
//     after 2 min) should not hold a workflow task open, and an operator reads their attempts.
// dotBirthAdmitLocal (the benchmark's variant) runs every step locally.
import { type ActivityOptions, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { AdmissionActivities } from '../activities/index.ts';
import { nonRetryableFailureTypes } from '../contracts/admission.ts';

const step = (scheduleToCloseTimeout: ActivityOptions['scheduleToCloseTimeout'], initialInterval = '500ms'): ActivityOptions => ({
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout,
  retry: { initialInterval, backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: nonRetryableFailureTypes },
});

// Heartbeats (activities/statement-guard.ts beats every second while a statement runs) carry a
// cancellation to the activity within 3 s, which cancels the backend query: a step Temporal gave up on
// cannot commit after the compensations ran.
export const preflightOptions: ActivityOptions = { ...step('10m'), heartbeatTimeout: '3s' };
export const permitOptions = step('5m');
export const finalizeOptions = step('5m');
export const compensationOptions = step('2m', '1s');
export const insertOptions = (permitTtlSeconds: number): ActivityOptions => ({ ...step(Math.floor(permitTtlSeconds * 800)), heartbeatTimeout: '3s' });

/** remote: every step an activity task (histories from before 'lean-admission'); lean: above; local: every step local. */
export type ActivityMode = 'remote' | 'lean' | 'local';

/** The admission's activities, each with its policy from the table above. */
export function admissionActivities(permitTtlSeconds: number, mode: ActivityMode) {
  const proxy = <K extends keyof AdmissionActivities>(options: ActivityOptions, local: boolean, ...names: K[]) => {
    // Both proxies expose the same call signatures; only where the step runs differs. A local
    // activity cannot heartbeat: its timeouts are enforced by the worker that runs it.
    const { heartbeatTimeout: _, ...localOptions } = options;
    const all = (local ? proxyLocalActivities(localOptions) : proxyActivities(options)) as unknown as AdmissionActivities;
    return Object.fromEntries(names.map((n) => [n, all[n]])) as Pick<AdmissionActivities, K>;
  };
  const short = mode !== 'remote'; // the short, repeatable steps
  const all = mode === 'local';
  return {
    ...proxy(preflightOptions, short, 'preflight', 'openAdmission'),
    ...proxy(permitOptions, short, 'requestPermit', 'issuePermit'),
    ...proxy(insertOptions(permitTtlSeconds), all, 'insertGovernedRow'),
    ...proxy(finalizeOptions, short, 'confirmFinalized', 'readAdmission'),
    ...proxy(compensationOptions, all, 'withdrawPermit', 'retireBirth'),
  };
}
export type AdmissionSteps = ReturnType<typeof admissionActivities>;
