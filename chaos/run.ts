// A chaos run, end to end: the stack (chaos/stack.ts), then for the seed's no-fault run and its fault
// run, each on its own copy of the world and its own task queue: worker processes, the Schedules
// (permit expiry, drift watch) and the governance handoff running throughout, the admissions driven
// (chaos/driver.ts) while the injector breaks things (chaos/faults.ts), then the invariants checked
// (chaos/invariants.ts). Everything started is stopped, whatever happens.
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { catchUpGovernanceHandoff, ensureGovernanceHandoff, governanceHandoffWorkflowId } from '../client/handoff.ts';
import { applySchedules, deleteSchedules, DRIFT_WATCH, PERMIT_EXPIRY, runScheduleNow, scheduleId } from '../client/schedules.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { createPool, type Pool } from '../db/pool.ts';
import type { ChaosOptions } from './args.ts';
import { drive, type Outcome } from './driver.ts';
import { FaultInjector, StopCondition } from './faults.ts';
import {
  checkBirths, checkBreakGlass, checkCatalog, checkEnds, checkHandoff, checkLivePermits, type CheckContext, handoffBehind, type Invariant,
  type Observed, observeAll, takeMarks,
} from './invariants.ts';
import { type ChaosPlan, drawPlan, FaultKind } from './plan.ts';
import { Prng } from './prng.ts';
import { breachCount, type ChaosReport, machine, percentile, type PhaseReport } from './report.ts';
import { type ChaosStack, startChaosStack } from './stack.ts';
import { persist, type RetryCounter, sleep } from './transient.ts';
import { WorkerFleet } from './workers.ts';

/** The Schedules tick this often in a chaos run (declared: every minute), so a short run sees them work. */
const SCHEDULE_EVERY_MS = 5_000;

export type PhaseContext = {
  stack: ChaosStack;
  client: Client;
  admin: Pool;
  taskQueue: string;
  database: string;
  plan: ChaosPlan;
  fleet: WorkerFleet;
  counter: RetryCounter;
};

export type RunHooks = {
  /** After the invariants were checked, with everything still up (a test plants a breach here). */
  afterChecks?(ctx: PhaseContext, check: () => Promise<Invariant[]>): Promise<void>;
  /** The stack is up: what must be stopped if the process is interrupted. */
  started?(stop: () => Promise<void>): void;
};

export async function runChaos(o: ChaosOptions & { temporalCli?: string; log?: (line: string) => void; hooks?: RunHooks }): Promise<ChaosReport> {
  const log = o.log ?? ((line: string) => process.stderr.write(`[chaos] ${line}\n`));
  const t0 = Date.now();
  log(`seed ${o.seed}: ${o.admissions} admissions on the ${o.engine} engine${o.faults ? '' : ', no faults'}${o.baseline && o.faults ? ', beside the no-fault run' : ''}`);
  const stack = await startChaosStack({ engine: o.engine, temporalCli: o.temporalCli, log });
  const report: ChaosReport = {
    seed: o.seed, engine: o.engine, engineDescription: stack.engine.describe, admissions: o.admissions, concurrency: o.concurrency, workers: o.workers,
    machine: machine(), setupMs: Date.now() - t0, totalMs: 0, phases: [], ok: false,
  };
  log(`stack up in ${(report.setupMs / 1000).toFixed(1)} s (${Object.entries(stack.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')})`);
  const cleanups: Array<() => Promise<void>> = [];
  const stopAll = async (keepScratch: boolean) => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    await stack.stop({ keepScratch });
  };
  o.hooks?.started?.(() => stopAll(true));
  let failed = true;
  try {
    if (o.baseline || !o.faults) report.phases.push(await runPhase(stack, o, { run: 1, faults: false }, log, cleanups));
    if (o.faults) report.phases.push(await runPhase(stack, o, { run: 2, faults: true }, log, cleanups));
    report.ok = report.phases.every((p) => breachCount(p) === 0);
    failed = false;
  } finally {
    report.totalMs = Date.now() - t0;
    const keep = failed || !report.ok;
    if (keep) report.scratch = stack.scratch;
    await stopAll(keep);
  }
  return report;
}

async function runPhase(
  stack: ChaosStack,
  o: ChaosOptions & { hooks?: RunHooks },
  which: { run: 1 | 2; faults: boolean },
  log: (line: string) => void,
  cleanups: Array<() => Promise<void>>,
): Promise<PhaseReport> {
  const started = Date.now();
  const label = which.faults ? 'faults' : 'no faults';
  const say = (line: string) => log(`[${label}] ${line}`);
  const plan = drawPlan(o.seed, o.admissions, { run: which.run, faults: which.faults });
  const db = await stack.newRunDatabase(which.faults ? 'faults' : 'calm');
  const taskQueue = `chaos-${which.run}-${db.name.slice(-6)}`;
  const counter: RetryCounter = { retries: 0 };
  const admin = createPool(db.url, { max: 4, applicationName: 'chaos-admin' });
  const operatorDb = createPool(db.operatorUrl, { max: 4, applicationName: 'chaos-operator' });
  const connection = await Connection.connect({ address: stack.engine.address });
  const client = new Client({ connection, namespace: stack.namespace });
  const fleet = new WorkerFleet({
    home: stack.home, workerUrl: db.workerUrl, temporalAddress: stack.engine.address, namespace: stack.namespace, taskQueue,
    logDir: path.join(stack.scratch, 'logs', which.faults ? 'faults' : 'calm'), size: o.workers, log: say,
  });
  let teardownDone = false;
  const teardown = async () => {
    if (teardownDone) return;
    teardownDone = true;
    await deleteSchedules(client, { taskQueue }).catch(() => undefined);
    await client.workflow.getHandle(governanceHandoffWorkflowId(taskQueue, db.name)).terminate('chaos run over').catch(() => undefined);
    await fleet.stop();
    await connection.close().catch(() => undefined);
    await admin.end().catch(() => undefined);
    await operatorDb.end().catch(() => undefined);
  };
  cleanups.push(teardown);
  try {
    await fleet.start();
    await applySchedules(client, { taskQueue, everyMs: SCHEDULE_EVERY_MS });
    await ensureGovernanceHandoff(client, { taskQueue, database: db.name });
    const marks = await takeMarks(admin);
    say(`database ${db.name}, task queue ${taskQueue}, ${o.workers} workers polling; ${plan.faults.length} faults planned`);

    // ── the admissions, with the faults among them ──
    const stopCondition = new StopCondition(admin, counter);
    const injector = new FaultInjector(plan.faults, {
      stack, fleet, admin, database: db.name, stopCondition, counter, rng: new Prng(o.seed).fork(`faults-live-${which.run}`), log: say, startedAt: started,
    });
    const outcomes: Outcome[] = new Array(plan.admissions.length);
    const driverCtx = { client, taskQueue, operatorDb, counter, stopCondition, seed: o.seed, log: say, deadlineMs: 15 * 60_000 };
    const phaseStart = Date.now();
    let next = 0;
    let done = 0;
    const progress = setInterval(() => say(`${done}/${plan.admissions.length} admissions settled, ${injector.injected.length}/${plan.faults.length} faults`), 15_000);
    try {
      await Promise.all(Array.from({ length: Math.min(o.concurrency, plan.admissions.length) }, async () => {
        for (let i = next++; i < plan.admissions.length; i = next++) {
          await injector.before(i);
          outcomes[i] = await drive(plan.admissions[i]!, driverCtx);
          done += 1;
        }
      }));
      await injector.finish();
    } finally {
      clearInterval(progress);
    }
    const admissionPhaseMs = Date.now() - phaseStart;
    await stopCondition.clear();
    await fleet.healthy();
    say(`${plan.admissions.length} admissions settled in ${(admissionPhaseMs / 1000).toFixed(1)} s; checking`);

    // ── the end: the handoff catches up, one more tick of each Schedule, then the invariants ──
    const handoff = { taskQueue, database: db.name };
    for (const deadline = Date.now() + 120_000; ;) {
      const behind = await persist(counter, 'handoff position', () => handoffBehind(admin));
      if (behind === 0) break;
      if (Date.now() > deadline) {
        say(`the handoff is still ${behind} births behind after 120 s`);
        break;
      }
      await persist(counter, 'wake the handoff', () => catchUpGovernanceHandoff(client, handoff)).catch((err: Error) => say(`wake the handoff: ${err.message}`));
      await sleep(500);
    }
    await persist(counter, 'permit-expiry tick', () => runScheduleNow(client, scheduleId(taskQueue, PERMIT_EXPIRY.name), { timeoutMs: 60_000 }))
      .catch((err: Error) => say(`the permit-expiry tick at the end failed: ${err.message}`));
    const drift = await persist(counter, 'drift-watch tick', () => runScheduleNow<{ open: number; hard: number }>(client, scheduleId(taskQueue, DRIFT_WATCH.name), { timeoutMs: 60_000 }))
      .then((r) => r.result, (err: Error) => {
        say(`the drift-watch tick at the end failed: ${err.message}`);
        return null;
      });
    const ctx: CheckContext = { client, admin, taskQueue, plan: plan.admissions, marks, counter };
    const schedules = await scheduleCounts(client, admin, taskQueue);
    let observed: Observed[] = [];
    const check = async (): Promise<Invariant[]> => {
      observed = await observeAll(ctx);
      return [
        ...(await checkEnds(ctx, observed)),
        ...(await checkBirths(ctx, observed)),
        await checkLivePermits(ctx),
        ...(await checkBreakGlass(ctx, observed)),
        ...(await checkCatalog(ctx, drift)),
        await checkHandoff(ctx),
        {
          name: 'the Schedules and the handoff ran throughout',
          checked: 3,
          breaches: [
            ...(schedules.permitExpiryTicks < 2 ? [`permit-expiry ticked ${schedules.permitExpiryTicks} time(s)`] : []),
            ...(schedules.driftWatchTicks < 2 ? [`drift-watch ticked ${schedules.driftWatchTicks} time(s)`] : []),
            ...(schedules.handoffBatches < 1 ? ['the handoff handed nothing off'] : []),
          ],
        },
      ];
    };
    const invariants = await check();
    const ended = observed;
    const phaseCtx: PhaseContext = { stack, client, admin, taskQueue, database: db.name, plan, fleet, counter };
    if (o.hooks?.afterChecks) await o.hooks.afterChecks(phaseCtx, check);

    const ends: Record<string, number> = {};
    for (const ob of ended) ends[ob.end] = (ends[ob.end] ?? 0) + 1;
    const latencies = outcomes.map((x) => x.latencyMs).filter((v): v is number => v !== null).sort((a, b) => a - b);
    const sum = (f: (x: Outcome) => number) => outcomes.reduce((n, x) => n + f(x), 0);
    const history = await historyRetries(client, plan, counter);
    const report: PhaseReport = {
      label, database: db.name, taskQueue,
      admissions: plan.admissions.length,
      ends,
      faults: injector.counts(),
      injected: injector.injected,
      retries: { ...history, clientCalls: counter.retries, workerRestarts: fleet.unexpectedExits },
      operators: {
        duplicateStarts: sum((x) => Math.max(0, x.starts - 1)),
        retry: sum((x) => x.decisions.retry), breakGlass: sum((x) => x.decisions.breakGlass), cancel: sum((x) => x.decisions.cancel),
        rollback: sum((x) => x.decisions.rollback), refused: sum((x) => x.decisions.refused),
        dimParks: sum((x) => x.dimParks), dimBreakGlass: sum((x) => x.dimBreakGlass), dimCleared: sum((x) => x.dimCleared),
        continuedAsNew: ended.filter((x) => x.runs > 1).length,
      },
      schedules,
      latency: { samples: latencies.length, p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies.at(-1) ?? null },
      throughput: plan.admissions.length / (admissionPhaseMs / 1000),
      admissionPhaseMs,
      wallMs: 0,
      invariants,
    };
    if (which.faults) {
      const missing = FaultKind.filter((k) => report.faults[k] === 0);
      if (missing.length) say(`fault kinds never injected: ${missing.join(', ')}`);
    }
    report.wallMs = Date.now() - started;
    say(`done: ${breachCount(report)} breach(es)`);
    return report;
  } finally {
    await teardown();
  }
}

/** The Schedules' actions and the handoff's batches of this run (visibility and the database). */
async function scheduleCounts(client: Client, admin: Pool, taskQueue: string): Promise<PhaseReport['schedules']> {
  const taken = async (name: string) => (await client.schedule.getHandle(scheduleId(taskQueue, name)).describe().catch(() => null))?.info.numActionsTaken ?? 0;
  const { rows: [b] } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM birth_handoff_batch`);
  return { permitExpiryTicks: await taken(PERMIT_EXPIRY.name), driftWatchTicks: await taken(DRIFT_WATCH.name), handoffBatches: b!.n };
}

const { EventType } = proto.temporal.api.enums.v1;

/** Retries as the admissions' histories record them: activity attempts past the first, failed or timed-out workflow tasks. */
async function historyRetries(client: Client, plan: ChaosPlan, counter: RetryCounter): Promise<{ activityAttempts: number; workflowTaskFailures: number }> {
  let activityAttempts = 0;
  let workflowTaskFailures = 0;
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let i = next++; i < plan.admissions.length; i = next++) {
      const history = await persist(counter, 'history', () => client.workflow.getHandle(admissionWorkflowId('dot_tools', plan.admissions[i]!.code)).fetchHistory());
      for (const e of history.events ?? []) {
        if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) activityAttempts += Math.max(0, (e.activityTaskStartedEventAttributes?.attempt ?? 1) - 1);
        if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT || e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) workflowTaskFailures += 1;
      }
    }
  }));
  return { activityAttempts, workflowTaskFailures };
}
