// The workflows the Temporal Schedules start (KB-7D57 "External scheduler — pg_cron absent", DESIGN §5:
// "permit-expiry sweep, drift watch … on Temporal Schedules"). One short run per tick, one or two
// activities each; the Schedule's interval, overlap policy and catch-up window, and why, are in
// client/schedules.ts. Deterministic: no I/O here, every side effect in activities/schedules.ts.
import { proxyActivities } from '@temporalio/workflow';
import type { DriftWatchResult, PermitSweepResult, ScheduleActivities } from '../activities/schedules.ts';
import { nonRetryableFailureTypes } from '../contracts/admission.ts';

/** The actors the ticks write into the permit log and the findings (fn_permit_expire_due's default). */
export const PERMIT_SWEEP_ACTOR = 'permit-expiry-sweep';
export const DRIFT_WATCH_ACTOR = 'drift-watch';

// | activity               | startToClose | heartbeat | scheduleToClose | why                                                         |
// |------------------------|--------------|-----------|-----------------|-------------------------------------------------------------|
// | expireDuePermits       | 10 s         | —         | 45 s            | one statement (the worker's statement_timeout is 8 s)       |
// | reconcileClosedPermits | 40 s         | 20 s      | 45 s            | a describe and a call per live permit; it beats per permit  |
// | recordDriftWatch       | 10 s         | —         | 45 s            | the dims (~12 ms at prod scale) and their record, one call  |
// Each tick gives up within 45 s of being scheduled, below the Schedules' 1 min interval: a tick that
// cannot finish (database down) fails and the next one starts afresh instead of holding SKIP's slot.
// Refusals the database makes on purpose (nonRetryableFailureTypes) are never retried.
const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: nonRetryableFailureTypes };
const { expireDuePermits, recordDriftWatch } = proxyActivities<ScheduleActivities>({
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '45s',
  retry,
});
const { reconcileClosedPermits } = proxyActivities<ScheduleActivities>({
  startToCloseTimeout: '40s',
  heartbeatTimeout: '20s',
  scheduleToCloseTimeout: '45s',
  retry,
});

/**
 * The permit-expiry sweep: RESERVED permits past their TTL → EXPIRED, then every live permit whose
 * owning workflow is closed in Temporal withdrawn (CANCELLED; FAILED from CONSUMED), logged with the run.
 */
export async function permitExpirySweep(): Promise<PermitSweepResult> {
  const expired = await expireDuePermits({ actor: PERMIT_SWEEP_ACTOR });
  const closed = await reconcileClosedPermits({ actor: PERMIT_SWEEP_ACTOR });
  return { expired, ...closed };
}

/**
 * The drift watch: the catalog fingerprint and the data-level invariants computed, the guard the gate
 * reads on every insert refreshed (gate_drift fails closed), every finding recorded with first and last seen.
 */
export async function driftWatchTick(): Promise<DriftWatchResult> {
  return recordDriftWatch({ actor: DRIFT_WATCH_ACTOR });
}
