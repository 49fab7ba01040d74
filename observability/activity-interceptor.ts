// The admission worker's activity interceptor (workers/admission-worker.ts installs it on every worker):
//
// - Log attributes: every line an activity logs — the SDK's own "Activity failed" warning included —
//   carries the `code`, `collection` and `permitId` of the activity's input where it has them, beside
//   the SDK's workflowId, activityType and attempt.
// - The Schedules' ticks, measured where their answers already are, without touching their code:
//   the drift watch's result (recordDriftWatch: open, hard, new and resolved findings) sets the drift
//   gauges; the first activity of a tick measures the Schedule's lag. Activities run once per attempt
//   and are never replayed, so nothing here is counted twice by a worker restart.
//
// Schedule lag: TemporalScheduledStartTime (the time the Schedule meant the tick for, a search attribute
// the server sets on every workflow a Schedule starts) to the moment the tick's first activity was
// scheduled (server time: its first workflow task ran on a worker). Server start delays and a tick that
// waited for a worker both show. One describe of the tick's workflow per tick, on the first attempt of
// activity 1, in the background: the activity never waits for it.
import { Context } from '@temporalio/activity';
import { defineSearchAttributeKey } from '@temporalio/common';
import { Runtime, type ActivityInterceptorsFactory } from '@temporalio/worker';
import { z } from 'zod';
import { DriftWatchResult } from '../activities/schedules.ts';
import { SCHEDULES } from '../client/schedules.ts';
import { type WorkerMetrics, workerMetrics } from './metrics.ts';

const ScheduledStartTime = defineSearchAttributeKey('TemporalScheduledStartTime', 'DATETIME');
const ScheduledById = defineSearchAttributeKey('TemporalScheduledById', 'KEYWORD');

/** The activity whose answer is the drift watch's (activities/schedules.ts). */
export const DRIFT_WATCH_ACTIVITY = 'recordDriftWatch';

/** What an activity input may name; read for log lines only, unknown fields ignored. */
const Ids = z.object({
  code: z.string().optional(),
  collection: z.string().optional(),
  permitId: z.union([z.string(), z.number()]).optional(),
});

const perMeter = new WeakMap<object, WorkerMetrics>();

/** The worker-side instruments on the installed runtime's meter, created once per process. */
export function runtimeMetrics(): WorkerMetrics {
  const meter = Runtime.instance().metricMeter;
  let m = perMeter.get(meter);
  if (!m) perMeter.set(meter, (m = workerMetrics(meter)));
  return m;
}

export function observeDriftWatch(m: WorkerMetrics, result: DriftWatchResult): void {
  m.driftFindingsOpen.set(result.hard, { severity: 'hard' });
  m.driftFindingsOpen.set(Math.max(0, result.open - result.hard), { severity: 'soft' });
  if (result.new > 0) m.driftFindingsNew.add(result.new);
  if (result.resolved > 0) m.driftFindingsResolved.add(result.resolved);
  m.driftWatchLastTick.set(Math.floor(Date.parse(result.at) / 1000));
}

async function measureScheduleLag(ctx: Context, m: WorkerMetrics): Promise<void> {
  const { workflowExecution, workflowType, scheduledTimestampMs } = ctx.info;
  if (!workflowExecution) return;
  const d = await ctx.client.workflow.getHandle(workflowExecution.workflowId, workflowExecution.runId).describe();
  const scheduled = d.typedSearchAttributes.get(ScheduledStartTime);
  if (!scheduled) return; // started by hand, not by a Schedule
  const schedule = d.typedSearchAttributes.get(ScheduledById) ?? workflowType ?? 'unknown';
  m.scheduleLag.record(Math.max(0, scheduledTimestampMs - scheduled.getTime()), { schedule });
}

export function observeActivities(opts: { tickWorkflows?: readonly string[]; metrics?: () => WorkerMetrics } = {}): ActivityInterceptorsFactory {
  const ticks = new Set(opts.tickWorkflows ?? SCHEDULES.map((s) => s.workflowType));
  const metrics = opts.metrics ?? runtimeMetrics;
  return (ctx) => {
    let ids: z.infer<typeof Ids> = {};
    return {
      inbound: {
        async execute(input, next) {
          const parsed = Ids.safeParse(input.args[0]);
          if (parsed.success) ids = parsed.data;
          const { info } = ctx;
          if (info.workflowType && ticks.has(info.workflowType) && info.activityId === '1' && info.attempt === 1) {
            void measureScheduleLag(ctx, metrics()).catch((err: unknown) =>
              ctx.log.warn('schedule lag not measured', { error: err }));
          }
          const result = await next(input);
          if (info.activityType === DRIFT_WATCH_ACTIVITY) {
            const r = DriftWatchResult.safeParse(result);
            if (r.success) observeDriftWatch(metrics(), r.data);
            else ctx.log.warn('drift watch answer not understood: drift gauges not set', { error: r.error.message });
          }
          return result;
        },
      },
      outbound: {
        getLogAttributes(attrs, next) {
          return next({ ...attrs, ...ids });
        },
      },
    };
  };
}
