// Retry policies, chosen per activity (DESIGN §4). Every SQL step is short, so startToClose is small
// and the schedule-to-close budget is what bounds an outage. Refusals the database makes on purpose
// are never retried: nonRetryableErrorTypes lists every FailureType except DATABASE_UNAVAILABLE and
// DATABASE_ERROR (connection loss, shutdown, deadlock, lock or statement timeout, unexpected SQLSTATE).
//
// | activity            | startToClose | scheduleToClose   | backoff            | never retried                 | why the budget                                  |
// |---------------------|--------------|-------------------|--------------------|-------------------------------|-------------------------------------------------|
// | preflight           | 10 s         | 10 min            | 0.5 s ×2 → 30 s    | INVALID_INPUT (BG400)         | read-only; waiting out an outage is harmless    |
// | requestPermit       | 10 s         | 5 min             | 0.5 s ×2 → 30 s    | BG400, PERMIT_CONFLICT (BG409)| idempotent on the key; conflict needs a human   |
// | issuePermit         | 10 s         | 5 min             | 0.5 s ×2 → 30 s    | BG400, PERMIT_CONFLICT (BG409)| idempotent on the key; conflict needs a human   |
// | insertGovernedRow   | 10 s         | 80 % of permit TTL| 0.5 s ×2 → 30 s    | GATE_REFUSED (BG403), BG400…  | must land before the permit expires             |
// | confirmFinalized    | 10 s         | 5 min             | 0.5 s ×2 → 30 s    | FINALIZE_NOT_CONFIRMED        | a committed insert that did not finalize is a bug|
// | withdrawPermit      | 10 s         | 2 min             | 1 s ×2 → 30 s      | ILLEGAL_TRANSITION (BG422)    | then COMPENSATION_FAILED parks for an operator  |
// | retireBirth         | 10 s         | 2 min             | 1 s ×2 → 30 s      | BG400, PRECONDITION (BG428)   | then COMPENSATION_FAILED parks for an operator  |
//
// A killed worker costs one startToClose (10 s) before the attempt is retried elsewhere.
//
// Local activities (dotBirthAdmitLocal, the benchmark's variant): the same steps and policies run in
// the workflow worker, recorded as markers at the end of the workflow task. Every step is idempotent
// (the permit key, the permit-bound insert), so re-running a task after a crash is as safe as a retry.
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

export type ActivityMode = 'remote' | 'local';

/** The admission's activities, each with its policy from the table above. */
export function admissionActivities(permitTtlSeconds: number, mode: ActivityMode) {
  const proxy = <K extends keyof AdmissionActivities>(options: ActivityOptions, ...names: K[]) => {
    // Both proxies expose the same call signatures; only where the step runs differs.
    const all = (mode === 'local' ? proxyLocalActivities(options) : proxyActivities(options)) as unknown as AdmissionActivities;
    return Object.fromEntries(names.map((n) => [n, all[n]])) as Pick<AdmissionActivities, K>;
  };
  return {
    ...proxy(preflightOptions, 'preflight'),
    ...proxy(permitOptions, 'requestPermit', 'issuePermit'),
    ...proxy(insertOptions(permitTtlSeconds), 'insertGovernedRow'),
    ...proxy(finalizeOptions, 'confirmFinalized', 'readAdmission'),
    ...proxy(compensationOptions, 'withdrawPermit', 'retireBirth'),
  };
}
export type AdmissionSteps = ReturnType<typeof admissionActivities>;
