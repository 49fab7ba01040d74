// birthgate's own metrics on the worker side, beside the Temporal runtime's (temporal_*) on the same
// Prometheus endpoint (observability/runtime.ts). Where each is measured, and why there:
//
// | metric                                   | kind      | measured by                                               |
// |------------------------------------------|-----------|-----------------------------------------------------------|
// | birthgate_admission_outcomes{outcome}    | counter   | the admission workflow's metric meter (observability/workflow.ts): replay-safe |
// | birthgate_break_glass_uses               | counter   | the same, when an admission acts on an accepted break-glass |
// | birthgate_permits{collection,state}      | gauge     | the ledger (v_permit_summary), every refresh (observability/gauges.ts) |
// | birthgate_break_glass_permits{…}         | gauge     | the same view: permits recorded as break-glass            |
// | birthgate_stuck_births{age}              | gauge     | v_permit_stuck: REQUESTED permits (a parked birth holds one) by time parked |
// | birthgate_stuck_birth_oldest_seconds     | gauge     | the same: how long the oldest has waited                   |
// | birthgate_permits_overdue{state}         | gauge     | v_permit_stuck: RESERVED/CONSUMED past their TTL           |
// | birthgate_drift_findings_open{severity}  | gauge     | each drift-watch tick's own answer (observability/activity-interceptor.ts) |
// | birthgate_drift_findings_new / _resolved | counter   | the same                                                    |
// | birthgate_drift_watch_last_tick_seconds  | gauge     | the same: when this worker last ran the tick (unix s)       |
// | birthgate_schedule_lag_ms{schedule}      | histogram | a Schedule's tick: scheduled time → its first activity scheduled |
// | birthgate_gauge_refresh_failures         | counter   | a ledger read that failed (the gauges keep their last values) |
//
// The ledger gauges are the same in every worker (each reads the one database): aggregate them with
// max(), not sum(). They survive worker restarts, which the counters do not: an outcome is counted by
// the worker that ran the workflow task, so sum the counters over workers with rate()/increase().
import type { MetricCounter, MetricGauge, MetricHistogram, MetricMeter } from '@temporalio/common';
import { ADMISSION_OUTCOMES, BREAK_GLASS_USES } from './workflow.ts';

export const METRIC = {
  admissionOutcomes: ADMISSION_OUTCOMES,
  breakGlassUses: BREAK_GLASS_USES,
  permits: 'birthgate_permits',
  breakGlassPermits: 'birthgate_break_glass_permits',
  stuckBirths: 'birthgate_stuck_births',
  stuckBirthOldest: 'birthgate_stuck_birth_oldest_seconds',
  permitsOverdue: 'birthgate_permits_overdue',
  driftFindingsOpen: 'birthgate_drift_findings_open',
  driftFindingsNew: 'birthgate_drift_findings_new',
  driftFindingsResolved: 'birthgate_drift_findings_resolved',
  driftWatchLastTick: 'birthgate_drift_watch_last_tick_seconds',
  scheduleLag: 'birthgate_schedule_lag_ms',
  gaugeRefreshFailures: 'birthgate_gauge_refresh_failures',
} as const;

/** The schedule lag's buckets (ms): a tick is due every minute, so lateness matters from ~1 s to minutes. */
export const SCHEDULE_LAG_BUCKETS_MS = [250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000];

/** Age buckets of a stuck birth: within the hour an operator may be on it; past a week it is forgotten. */
export const STUCK_AGE = [
  { label: 'under_1h', below: 3_600 },
  { label: '1h_to_1d', below: 86_400 },
  { label: '1d_to_7d', below: 7 * 86_400 },
  { label: 'over_7d', below: Infinity },
] as const;

export type WorkerMetrics = {
  permits: MetricGauge;
  breakGlassPermits: MetricGauge;
  stuckBirths: MetricGauge;
  stuckBirthOldest: MetricGauge;
  permitsOverdue: MetricGauge;
  driftFindingsOpen: MetricGauge;
  driftFindingsNew: MetricCounter;
  driftFindingsResolved: MetricCounter;
  driftWatchLastTick: MetricGauge;
  scheduleLag: MetricHistogram;
  gaugeRefreshFailures: MetricCounter;
};

/** The worker-side instruments on `meter` (the runtime's; a no-op meter when no exporter is installed). */
export function workerMetrics(meter: MetricMeter): WorkerMetrics {
  return {
    permits: meter.createGauge(METRIC.permits, 'int', undefined, 'permits in the ledger by collection and state (v_permit_summary)'),
    breakGlassPermits: meter.createGauge(METRIC.breakGlassPermits, 'int', undefined, 'permits recorded as break-glass, by collection and state'),
    stuckBirths: meter.createGauge(METRIC.stuckBirths, 'int', undefined, 'stuck births (REQUESTED permits) by how long they have waited'),
    stuckBirthOldest: meter.createGauge(METRIC.stuckBirthOldest, 'int', 's', 'seconds the oldest stuck birth has waited (0: none)'),
    permitsOverdue: meter.createGauge(METRIC.permitsOverdue, 'int', undefined, 'RESERVED or CONSUMED permits past their TTL'),
    driftFindingsOpen: meter.createGauge(METRIC.driftFindingsOpen, 'int', undefined, 'open drift findings at the last drift-watch tick this worker ran'),
    driftFindingsNew: meter.createCounter(METRIC.driftFindingsNew, undefined, 'drift findings opened by drift-watch ticks'),
    driftFindingsResolved: meter.createCounter(METRIC.driftFindingsResolved, undefined, 'drift findings resolved by drift-watch ticks'),
    driftWatchLastTick: meter.createGauge(METRIC.driftWatchLastTick, 'int', 's', 'unix time of the last drift-watch tick this worker ran'),
    scheduleLag: meter.createHistogram(METRIC.scheduleLag, 'int', 'ms', 'a Schedule tick: from its scheduled time to its first activity being scheduled'),
    gaugeRefreshFailures: meter.createCounter(METRIC.gaugeRefreshFailures, undefined, 'ledger reads for the gauges that failed'),
  };
}
