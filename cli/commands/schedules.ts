// birthgate schedules [--json] | schedules apply [--json] — the Temporal Schedules (client/schedules.ts):
// the permit-expiry sweep and the drift watch, created idempotently on the admission task queue and
// listed with their interval, overlap policy, catch-up window (and why), last and next run. The SDK
// and the client load when a verb runs.
import type { Client } from '@temporalio/client';
import type { ScheduleView } from '../../client/schedules.ts';
import { parseFlags } from '../args.ts';
import { EXIT, type CliContext, type Command } from '../command.ts';

const json = (argv: string[]): boolean => parseFlags(argv, {}).values.json === true;

async function withTemporal<T>(ctx: CliContext, fn: (client: Client) => Promise<T>): Promise<T> {
  const { temporalAddress, namespace } = await ctx.endpoints();
  const { Client, Connection } = await import('@temporalio/client');
  const connection = await Connection.connect({ address: temporalAddress });
  try {
    return await fn(new Client({ connection, namespace }));
  } finally {
    await connection.close();
  }
}

/** 60000 → "1m", 90000 → "90s". */
export function duration(ms: number | undefined): string {
  if (ms === undefined) return '?';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function lines(v: ScheduleView): string[] {
  const head = `${v.name.padEnd(14)} ${v.scheduleId} → ${v.workflowType}: ${v.summary}`;
  const why = [`  why every ${duration(v.declared.everyMs)}: ${v.declared.why.every}`,
    `  why ${v.declared.overlap}: ${v.declared.why.overlap}`,
    `  why catch-up ${duration(v.declared.catchupWindowMs)}: ${v.declared.why.catchupWindow}`];
  const s = v.server;
  if (!s) return [head, '  NOT CREATED — `birthgate schedules apply` creates it', ...why];
  return [
    head,
    `  every ${duration(s.everyMs)} · overlap ${s.overlap} · catch-up window ${duration(s.catchupWindowMs)} · ${s.paused ? `PAUSED${s.note ? ` (${s.note})` : ''}` : 'active'}`,
    `  last run ${s.lastRun ? `${s.lastRun.at} ${s.lastRun.status} (${s.lastRun.workflowId})` : 'none yet'} · next run ${s.nextRun ?? 'none'} · ${s.actions} run(s), ${s.skippedOverlap} skipped (overlap), ${s.missedCatchupWindow} missed (catch-up)`,
    ...(s.differences.length ? [`  DIFFERS from its declaration: ${s.differences.join('; ')} — \`birthgate schedules apply\``] : []),
    ...why,
  ];
}

export const commands: Command[] = [
  {
    name: 'schedules',
    summary: 'the Temporal Schedules (permit expiry, drift watch): interval, overlap policy, catch-up window, last/next run (exit 1 when one is missing or differs)',
    usage: 'schedules [--json]',
    examples: ['birthgate schedules', 'birthgate schedules --json'],
    async run(argv, ctx) {
      const asJson = json(argv);
      const { listSchedules } = await import('../../client/schedules.ts');
      const views = await withTemporal(ctx, (client) => listSchedules(client, { taskQueue: ctx.config.taskQueue }));
      if (asJson) ctx.out(JSON.stringify(views, null, 2));
      else for (const v of views) for (const l of lines(v)) ctx.out(l);
      const ok = views.every((v) => v.server && v.server.differences.length === 0);
      if (!ok) ctx.err(`next: \`birthgate schedules apply\` creates them, or brings them to their declaration (task queue ${ctx.config.taskQueue})`);
      return ok ? EXIT.done : EXIT.failed;
    },
  },
  {
    name: 'schedules apply',
    summary: 'create the Schedules, or bring them to their declaration (idempotent; `npm start` runs it too)',
    usage: 'schedules apply [--json]',
    examples: ['birthgate schedules apply', 'birthgate schedules apply --json'],
    async run(argv, ctx) {
      const asJson = json(argv);
      const { applySchedules } = await import('../../client/schedules.ts');
      const { ensureGovernanceHandoff } = await import('../../client/handoff.ts');
      // The governance handoff is a long-running tail, not a Schedule (workflows/handoff.ts): started here
      // too, once per estate database, idempotently.
      const { databaseOf } = await import('../../db/pool.ts');
      const database = databaseOf((await ctx.endpoints()).databaseUrl);
      const { applied, handoff } = await withTemporal(ctx, async (client) => ({
        applied: await applySchedules(client, { taskQueue: ctx.config.taskQueue }),
        handoff: await ensureGovernanceHandoff(client, { taskQueue: ctx.config.taskQueue, database }),
      }));
      if (asJson) ctx.out(JSON.stringify({ schedules: applied, handoff }, null, 2));
      else {
        for (const a of applied) ctx.out(`${a.outcome.padEnd(9)} ${a.scheduleId}${a.changed.length ? ` (${a.changed.join('; ')})` : ''}`);
        ctx.out(`${(handoff.started ? 'started' : 'running').padEnd(9)} ${handoff.workflowId} (the governance handoff of ${database})`);
      }
      return EXIT.done;
    },
  },
];
