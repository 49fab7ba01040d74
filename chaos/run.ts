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
import pg from 'pg';
import type { Pool } from '../db/pool.ts';
import type { ChaosOptions } from './args.ts';
import { drive, giveUp, type Outcome } from './driver.ts';
import { FaultInjector, StopCondition } from './faults.ts';
import {
  checkBirths, checkBreakGlass, checkCatalog, checkEnds, checkHandoff, checkLivePermits, checkSweepWithdrawals, type CheckContext, handoffBehind, type Invariant,
  type Observed, observeAll, takeMarks,
} from './invariants.ts';
import { type ChaosPlan, drawPlan, FaultKind } from './plan.ts';
import { Prng } from './prng.ts';
import { breachCount, type ChaosReport, machine, percentile, type PhaseReport } from './report.ts';
import { type ChaosStack, startChaosStack } from './stack.ts';
import { atMost, boundedCalls, type Call, type RetryCounter, sleep } from './transient.ts';
import { WorkerFleet } from './workers.ts';

/** The Schedules tick this often in a chaos run (declared: every minute), so a short run sees them work. */
const SCHEDULE_EVERY_MS = 5_000;
/** How long the end of a phase waits for the handoff to cover every birth before the invariants judge it. */
const HANDOFF_CATCH_UP_MS = 300_000;

export type PhaseContext = {
  stack: ChaosStack;
  client: Client;
  call: Call;
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
    machine: machine(), setupMs: Date.now() - t0, totalMs: 0, phases: [], ok: false, workdir: stack.scratch,
  };
  log(`stack up in ${(report.setupMs / 1000).toFixed(1)} s (${Object.entries(stack.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')})`);
  const cleanups: Array<(emergency: boolean) => Promise<void>> = [];
  const stopAll = async (keepScratch: boolean, emergency = false) => {
    for (const c of cleanups.splice(0).reverse()) await c(emergency).catch(() => undefined);
    await stack.stop({ keepScratch });
  };
  o.hooks?.started?.(() => stopAll(true, true));
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
  cleanups: Array<(emergency: boolean) => Promise<void>>,
): Promise<PhaseReport> {
  const started = Date.now();
  const label = which.faults ? 'faults' : 'no faults';
  const say = (line: string) => log(`[${label}] ${line}`);
  const plan = drawPlan(o.seed, o.admissions, { run: which.run, faults: which.faults });
  const db = await stack.newRunDatabase(which.faults ? 'faults' : 'calm');
  const taskQueue = `chaos-${which.run}-${db.name.slice(-6)}`;
  const counter: RetryCounter = { retries: 0 };
  const admin = harnessPool(db.url, 'chaos-admin', 120_000);
  const operatorDb = harnessPool(db.operatorUrl, 'chaos-operator', 30_000);
  const connection = await Connection.connect({ address: stack.engine.address });
  // Named, so what the harness itself does in Temporal (a test's planted termination) says so in the history.
  const client = new Client({ connection, namespace: stack.namespace, identity: `chaos-harness@${process.pid}` });
  const call = boundedCalls(client, counter, say);
  const fleet = new WorkerFleet({
    home: stack.home, workerUrl: db.workerUrl, temporalAddress: stack.engine.address, namespace: stack.namespace, taskQueue,
    logDir: path.join(stack.scratch, 'logs', which.faults ? 'faults' : 'calm'), size: o.workers, log: say,
  });
  let teardownDone = false;
  let settled = false;
  // Bounded at every step: a server that is gone (an interrupted run) must not hold the teardown. The
  // Temporal connection is closed only once nothing uses it: the client's own gRPC retries of a call
  // still in flight would throw from a timer on a closed channel.
  const teardown = async (emergency = false) => {
    if (teardownDone) return;
    teardownDone = true;
    if (!emergency) {
      await atMost(15_000, client.withDeadline(Date.now() + 15_000, async () => {
        await deleteSchedules(client, { taskQueue });
        await client.workflow.getHandle(governanceHandoffWorkflowId(taskQueue, db.name)).terminate('chaos run over').catch(() => undefined);
      }));
    }
    await fleet.stop();
    if (settled) await atMost(5_000, connection.close());
    await atMost(5_000, admin.end());
    await atMost(5_000, operatorDb.end());
  };
  cleanups.push(teardown);
  try {
    await fleet.start();
    await call('apply the Schedules', () => applySchedules(client, { taskQueue, everyMs: SCHEDULE_EVERY_MS }));
    await call('start the handoff', () => ensureGovernanceHandoff(client, { taskQueue, database: db.name }));
    const marks = await takeMarks(admin);
    say(`database ${db.name}, task queue ${taskQueue}, ${o.workers} workers polling; ${plan.faults.length} faults planned`);

    // ── the admissions, with the faults among them ──
    const stopCondition = new StopCondition(admin, counter);
    const injector = new FaultInjector(plan.faults, {
      stack, fleet, admin, database: db.name, stopCondition, counter, rng: new Prng(o.seed).fork(`faults-live-${which.run}`), log: say, startedAt: started,
    });
    const outcomes: Outcome[] = new Array(plan.admissions.length);
    const phases = new Map<number, string>();
    const driverCtx = { client, taskQueue, operatorDb, call, phases, stopCondition, seed: o.seed, log: say, deadlineMs: 15 * 60_000 };
    const phaseStart = Date.now();
    let next = 0;
    let done = 0;
    const progress = setInterval(() => {
      say(`${done}/${plan.admissions.length} admissions settled, ${injector.injected.length}/${plan.faults.length} faults`);
      if (phases.size > 0 && phases.size <= 3) for (const p of phases.values()) say(`  still driving ${p}`);
    }, 15_000);
    let aborted = false;
    try {
      await Promise.all(Array.from({ length: Math.min(o.concurrency, plan.admissions.length) }, async () => {
        for (let i = next++; i < plan.admissions.length && !aborted; i = next++) {
          // A fault that could not be injected ends the run: no lane starts another admission.
          await injector.before(i).catch((err: unknown) => {
            aborted = true;
            throw err;
          });
          const a = plan.admissions[i]!;
          outcomes[i] = await drive(a, driverCtx).catch((err: Error) => {
            // One admission the harness could not drive is not the end of the run: the invariants judge it.
            say(`${a.code} (${a.kind}): the harness stopped driving it: ${err.message}`);
            return giveUp(a, err);
          });
          phases.delete(i);
          done += 1;
        }
      }));
      await injector.finish();
    } finally {
      clearInterval(progress);
    }
    const admissionPhaseMs = Date.now() - phaseStart;
    // What the Schedules and the handoff did while the admissions ran, before the end's own ticks.
    const schedules = await call('schedule counts', () => scheduleCounts(client, admin, taskQueue));
    await stopCondition.clear();
    await fleet.healthy();
    say(`${plan.admissions.length} admissions settled in ${(admissionPhaseMs / 1000).toFixed(1)} s; checking`);

    // ── the end: the handoff catches up, one more tick of each Schedule, then the invariants ──
    const handoff = { taskQueue, database: db.name };
    // Generous: on a loaded machine the handoff's batches wait for CPU; the loop ends as soon as it caught up.
    for (const deadline = Date.now() + HANDOFF_CATCH_UP_MS; ;) {
      const behind = await call('handoff position', () => handoffBehind(admin));
      if (behind === 0) break;
      if (Date.now() > deadline) {
        say(`the handoff is still ${behind} births behind after ${HANDOFF_CATCH_UP_MS / 1000} s`);
        break;
      }
      await call('wake the handoff', () => catchUpGovernanceHandoff(client, handoff)).catch((err: Error) => say(`wake the handoff: ${err.message}`));
      await sleep(500);
    }
    await call('permit-expiry tick', () => runScheduleNow(client, scheduleId(taskQueue, PERMIT_EXPIRY.name), { timeoutMs: 60_000 }), 90_000)
      .catch((err: Error) => say(`the permit-expiry tick at the end failed: ${err.message}`));
    const drift = await call('drift-watch tick', () => runScheduleNow<{ open: number; hard: number }>(client, scheduleId(taskQueue, DRIFT_WATCH.name), { timeoutMs: 60_000 }), 90_000)
      .then((r) => r.result, (err: Error) => {
        say(`the drift-watch tick at the end failed: ${err.message}`);
        return null;
      });
    const ctx: CheckContext = { client, admin, taskQueue, plan: plan.admissions, marks, call };
    // A phase shorter than two intervals may see no tick of its own; any longer one must.
    const expectTicks = admissionPhaseMs > 2 * SCHEDULE_EVERY_MS;
    let observed: Observed[] = [];
    const check = async (): Promise<Invariant[]> => {
      observed = await observeAll(ctx);
      return [
        ...(await checkEnds(ctx, observed)),
        ...(await checkBirths(ctx, observed)),
        await checkLivePermits(ctx),
        await checkSweepWithdrawals(ctx),
        ...(await checkBreakGlass(ctx, observed)),
        ...(await checkCatalog(ctx, drift)),
        await checkHandoff(ctx),
        {
          name: 'the Schedules and the handoff ran throughout',
          checked: 3,
          breaches: expectTicks ? [
            ...(schedules.permitExpiryTicks < 1 ? ['permit-expiry never ticked while the admissions ran'] : []),
            ...(schedules.driftWatchTicks < 1 ? ['drift-watch never ticked while the admissions ran'] : []),
            ...(schedules.handoffBatches < 1 ? ['the handoff handed nothing off while the admissions ran'] : []),
          ] : [],
          note: `while admitting: ${schedules.permitExpiryTicks} expiry and ${schedules.driftWatchTicks} drift ticks, ${schedules.handoffBatches} handoff batches`,
        },
      ];
    };
    const invariants = await check();
    const ended = observed;
    const phaseCtx: PhaseContext = { stack, client, call, admin, taskQueue, database: db.name, plan, fleet, counter };
    if (o.hooks?.afterChecks) await o.hooks.afterChecks(phaseCtx, check);

    const ends: Record<string, number> = {};
    for (const ob of ended) ends[ob.end] = (ends[ob.end] ?? 0) + 1;
    const latencies = outcomes.map((x) => x.latencyMs).filter((v): v is number => v !== null).sort((a, b) => a - b);
    const sum = (f: (x: Outcome) => number) => outcomes.reduce((n, x) => n + f(x), 0);
    const history = await historyRetries(client, plan, call);
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
        unexpectedParks: sum((x) => x.unexpectedParks),
        continuedAsNew: ended.filter((x) => x.runs > 1).length,
      },
      continuedAsNew: ended.filter((x) => x.runs > 1).map((x) => ({ code: x.code, kind: x.kind, runs: x.runs })),
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
    if (fleet.builtAtStart) say(`${fleet.builtAtStart} worker(s) built the workflow bundle at start: the code changed under the run's prebuilt one`);
    say(`done: ${breachCount(report)} breach(es)`);
    settled = true;
    return report;
  } finally {
    await teardown(false);
  }
}

/** The Schedules' actions and the handoff's batches of this run (visibility and the database). */
async function scheduleCounts(client: Client, admin: Pool, taskQueue: string): Promise<PhaseReport['schedules']> {
  const taken = async (name: string) => (await client.schedule.getHandle(scheduleId(taskQueue, name)).describe().catch(() => null))?.info.numActionsTaken ?? 0;
  const { rows: [b] } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM birth_handoff_batch`);
  return { permitExpiryTicks: await taken(PERMIT_EXPIRY.name), driftWatchTicks: await taken(DRIFT_WATCH.name), handoffBatches: b!.n };
}

/**
 * Pause a Schedule and wait for every tick it already started to end. A pause only stops new actions:
 * a tick started a moment before it still runs, and a permit sweep that describes a workflow
 * terminated after the pause withdraws its permit (its job) — so a test that orphans a permit on
 * purpose must let that tick finish first. Every recent action still running is waited for (its
 * result, from its history), not only the ones the Schedule lists as running: that list is the
 * Schedule's own bookkeeping and may lag.
 */
export async function pauseAndDrain(client: Client, id: string, note: string, timeoutMs = 120_000): Promise<string[]> {
  const handle = client.schedule.getHandle(id);
  await handle.pause(note);
  const deadline = Date.now() + timeoutMs;
  // Once the Schedule says it is paused it has handled the pause: whatever it started is in its record.
  let d = await handle.describe();
  while (!d.state.paused) {
    if (Date.now() > deadline) throw new Error(`schedule ${id} is still not paused after ${timeoutMs} ms`);
    await sleep(100);
    d = await handle.describe();
  }
  const runs = new Map<string, { workflowId: string; firstExecutionRunId: string }>();
  for (const a of [...d.info.runningActions, ...d.info.recentActions.map((r) => r.action)]) runs.set(`${a.workflow.workflowId}/${a.workflow.firstExecutionRunId}`, a.workflow);
  const waited: string[] = [];
  for (const w of runs.values()) {
    const run = client.workflow.getHandle(w.workflowId, w.firstExecutionRunId, { followRuns: false });
    if ((await run.describe()).status.name !== 'RUNNING') continue;
    await client.withDeadline(deadline, () => run.result()).catch((err: unknown) => {
      // A tick that failed is over too; one that is still running when the time is up is not.
      if (Date.now() > deadline) throw new Error(`schedule ${id}: tick ${w.workflowId} still running after ${timeoutMs} ms`, { cause: err });
    });
    waited.push(w.workflowId);
  }
  return waited;
}

const { EventType } = proto.temporal.api.enums.v1;

/**
 * Retries as the admissions' histories record them: activity attempts past the first (an activity
 * task's ActivityTaskStarted carries its attempt; a local activity's marker, core_local_activity, its
 * own), and workflow tasks that failed or timed out (a worker killed while holding one).
 */
async function historyRetries(client: Client, plan: ChaosPlan, call: Call): Promise<{
  activityAttempts: number; localActivityAttempts: number; workflowTaskTimeouts: number; workflowTaskFailures: number;
}> {
  let activityAttempts = 0;
  let localActivityAttempts = 0;
  let workflowTaskTimeouts = 0;
  let workflowTaskFailures = 0;
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let i = next++; i < plan.admissions.length; i = next++) {
      const history = await call('history', () => client.workflow.getHandle(admissionWorkflowId('dot_tools', plan.admissions[i]!.code)).fetchHistory());
      for (const e of history.events ?? []) {
        if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) activityAttempts += Math.max(0, (e.activityTaskStartedEventAttributes?.attempt ?? 1) - 1);
        if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT) workflowTaskTimeouts += 1;
        if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) workflowTaskFailures += 1;
        const marker = e.markerRecordedEventAttributes;
        if (marker?.markerName === 'core_local_activity') {
          const data = marker.details?.data?.payloads?.[0]?.data;
          const attempt = data ? Number((JSON.parse(Buffer.from(data).toString('utf8')) as { attempt?: number }).attempt ?? 1) : 1;
          localActivityAttempts += Math.max(0, attempt - 1);
        }
      }
    }
  }));
  return { activityAttempts, localActivityAttempts, workflowTaskTimeouts, workflowTaskFailures };
}

/** The harness's own sessions: bounded statements and connects, so a query cut off by a fault fails instead of hanging. */
function harnessPool(url: string, name: string, statementTimeoutMs: number): Pool {
  const pool = new pg.Pool({
    connectionString: url, max: 4, application_name: name, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 10_000, statement_timeout: statementTimeoutMs,
  });
  pool.on('error', () => undefined); // an idle session cut by a restart is dropped; the next checkout connects afresh
  return pool;
}
