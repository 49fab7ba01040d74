// The admission worker as a process: what `birthgate worker` (cli/commands/worker.ts) and
// `node --import tsx workers/main.ts` run.
//
// Connects to PostgreSQL as birthgate_worker (never a superuser: checked before the first poll) with
// the URL the stack gives (BIRTHGATE_WORKER_DATABASE_URL, else derived from the superuser URL and
// BIRTHGATE_WORKER_PASSWORD), to Temporal at the stack's address, runs the prebuilt production bundle
// when it matches the code (else builds one in memory and says so), and logs its identity, build id
// and task queue. The first SIGINT/SIGTERM drains: no new tasks are polled, in-flight ones get up to
// the drain timeout to finish (the SDK's shutdownGraceTime), then activities still running are
// cancelled and the run gives up `FORCE_AFTER_DRAIN_MS` later (shutdownForceTime). Exit 0 after a
// clean drain, 1 when the drain timed out; a second signal exits 1 at once.
// Its lines, the SDK's and the workflows' are one JSON object per line (BIRTHGATE_LOG_FORMAT=text for a
// terminal); with BIRTHGATE_METRICS_PORT (or --metrics-port) it serves Prometheus metrics and re-reads
// the ledger gauges (observability/). README "Metrics and logs".
import os from 'node:os';
import { GracefulShutdownPeriodExpiredError, NativeConnection } from '@temporalio/worker';
import { type ActivityHooks, CrashPoint } from '../activities/hooks.ts';
import type { Config } from '../config/index.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { runtimeMetrics } from '../observability/activity-interceptor.ts';
import { type GaugeRefresh, startLedgerGauges } from '../observability/gauges.ts';
import { workerLines } from '../observability/logger.ts';
import { installWorkerRuntime } from '../observability/runtime.ts';
import type { StackEndpoints } from '../stack/endpoints.ts';
import { createAdmissionWorker, DEFAULT_ACTIVITY_SLOTS } from './admission-worker.ts';
import { productionBundle } from './bundle.ts';

/** Default drain: one activity start-to-close (10 s, workflows/activity-options.ts) plus slack. */
export const DEFAULT_DRAIN_MS = 15_000;
/** After the drain timeout, how long cancelled activities get before the run gives up. */
export const FORCE_AFTER_DRAIN_MS = 5_000;

export type WorkerTarget = { workerDatabaseUrl: string; temporalAddress: string; namespace: string };

/**
 * Where the worker connects. A worker needs no superuser URL: when BIRTHGATE_WORKER_DATABASE_URL and
 * TEMPORAL_ADDRESS are both set they are used as they are; otherwise the stack says (ctx.endpoints():
 * the embedded stack's state file, or DATABASE_URL / TEMPORAL_ADDRESS, the worker URL derived).
 */
export async function workerTarget(config: Config, endpoints: () => Promise<StackEndpoints>): Promise<WorkerTarget> {
  if (config.workerDatabaseUrl && config.externalTemporalAddress) {
    return { workerDatabaseUrl: config.workerDatabaseUrl, temporalAddress: config.externalTemporalAddress, namespace: config.namespace };
  }
  const e = await endpoints();
  return { workerDatabaseUrl: e.workerDatabaseUrl, temporalAddress: e.temporalAddress, namespace: e.namespace };
}

/** Test hook: SIGKILL this process at a named point inside an activity. Honoured only when NODE_ENV=test. */
export function crashHooks(env: NodeJS.ProcessEnv): ActivityHooks | undefined {
  const at = env.BIRTHGATE_TEST_CRASH_AT;
  if (env.NODE_ENV !== 'test' || !at) return undefined;
  if (!(CrashPoint as readonly string[]).includes(at)) throw new Error(`BIRTHGATE_TEST_CRASH_AT must be one of ${CrashPoint.join(', ')}`);
  return {
    at(point) {
      if (point === at) process.kill(process.pid, 'SIGKILL');
    },
  };
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/** Connect as the worker role and refuse a superuser (or a login that is not birthgate_worker's). */
async function checkRole(pool: Pool, url: string): Promise<string> {
  let row: { name: string; super: boolean } | undefined;
  try {
    row = (await pool.query<{ name: string; super: boolean }>(`SELECT current_user AS name, rolsuper AS super FROM pg_roles WHERE rolname = current_user`)).rows[0];
  } catch (err) {
    throw new Error(
      `cannot connect to PostgreSQL as ${new URL(url).username || '(no user)'} (${redact(url)}): ${(err as Error).message}` +
        ' — is the packet applied (`birthgate apply`, it creates birthgate_worker) and BIRTHGATE_WORKER_PASSWORD the password it was given?',
    );
  }
  if (!row) throw new Error('cannot read the worker role from pg_roles');
  if (row.super) throw new Error(`refusing to run the worker as superuser ${row.name}: the worker connects as birthgate_worker (BIRTHGATE_WORKER_DATABASE_URL)`);
  return row.name;
}

export type ServeOptions = {
  config: Config;
  endpoints: () => Promise<StackEndpoints>;
  /** Resolves when the process is asked to stop (first SIGINT/SIGTERM). */
  stop: Promise<string>;
  log: (line: string) => void;
  drainMs?: number;
  hooks?: ActivityHooks;
  /** Overrides config.metricsPort (`birthgate worker --metrics-port`). */
  metricsPort?: number;
};

export type ServeResult = {
  /** 0: drained cleanly; 1: the drain timed out. */
  code: 0 | 1;
  /** False when something may still hold the event loop (a forced stop): the caller should exit the process. */
  closed: boolean;
};

/** Run the production admission worker until `stop`, then drain. Throws when it cannot start or dies on its own. */
export async function serveAdmissionWorker(o: ServeOptions): Promise<ServeResult> {
  const { config } = o;
  const log = workerLines(config.logFormat, o.log);
  const drainMs = o.drainMs ?? DEFAULT_DRAIN_MS;
  let stopSignal: string | undefined;
  void o.stop.then((s) => (stopSignal = s));

  // Signals are ours (drain timer, exit code), not the runtime's default instant shutdown; the logger
  // and the Prometheus exporter are birthgate's (observability/runtime.ts). An embedding process that
  // installed a runtime first keeps its own.
  const metricsPort = o.metricsPort ?? config.metricsPort;
  const runtime = installWorkerRuntime({
    format: config.logFormat,
    level: config.logLevel,
    write: o.log,
    metrics: metricsPort === undefined ? null : { host: config.metricsHost, port: metricsPort },
  });

  const target = await workerTarget(config, o.endpoints);
  const slots = DEFAULT_ACTIVITY_SLOTS;
  const pool = createPool(target.workerDatabaseUrl, { max: slots, applicationName: 'birthgate-worker' });
  let connection: NativeConnection | undefined;
  let gauges: GaugeRefresh | undefined;
  let forced = false;
  const second = () => {
    log('birthgate worker: second signal — exiting without waiting for the drain');
    process.exit(1);
  };
  let code: 0 | 1;
  try {
    const role = await checkRole(pool, target.workerDatabaseUrl);
    const wb = await productionBundle(config.home);
    if (wb.origin.kind === 'built') {
      log(`birthgate worker: no usable prebuilt bundle (${wb.origin.reason}); built the workflow bundle now (${(wb.origin.ms / 1000).toFixed(1)} s, in memory) — \`birthgate worker build\` builds it once`);
    }
    connection = await NativeConnection.connect({ address: target.temporalAddress });
    const identity = `birthgate-worker:${process.pid}@${os.hostname()}`;
    const worker = await createAdmissionWorker({
      connection,
      namespace: target.namespace,
      taskQueue: config.taskQueue,
      pool,
      workflowBundle: wb.bundle,
      hooks: o.hooks,
      maxConcurrentActivityTaskExecutions: slots,
      buildId: wb.buildId,
      identity,
      shutdownGraceTime: drainMs,
      shutdownForceTime: drainMs + FORCE_AFTER_DRAIN_MS,
    });
    const run = worker.run();
    log(`birthgate worker: identity ${identity}`);
    log(`birthgate worker: build id ${wb.buildId} (${wb.origin.kind === 'prebuilt' ? `prebuilt bundle ${wb.origin.path}` : 'bundle built at start'}); workflows ${wb.workflows.join(', ')}`);
    log(`birthgate worker: task queue ${config.taskQueue} on ${target.temporalAddress} (namespace ${target.namespace}); PostgreSQL as ${role} ${redact(target.workerDatabaseUrl)}; drain timeout ${drainMs / 1000} s`);
    if (runtime.metricsUrl) {
      gauges = startLedgerGauges({ db: pool, metrics: runtimeMetrics(), everyMs: config.metricsIntervalMs, warn: (line) => log(line, 'WARN') });
      log(`birthgate worker: metrics on ${runtime.metricsUrl} (the ledger gauges re-read every ${config.metricsIntervalMs / 1000} s)`);
    } else {
      log(runtime.installed
        ? 'birthgate worker: metrics off (set BIRTHGATE_METRICS_PORT or --metrics-port to serve them)'
        : `birthgate worker: metrics and log format are the embedding process's (its Temporal runtime was installed first)${metricsPort === undefined ? '' : `; port ${metricsPort} not served`}`);
    }

    const ended = await Promise.race([run.then(() => 'ended' as const, (err: unknown) => ({ err })), o.stop.then(() => 'stop' as const)]);
    if (ended !== 'stop') {
      if (ended === 'ended') throw new Error('the worker stopped on its own');
      throw ended.err;
    }

    const inFlight = worker.getStatus().numInFlightActivities;
    log(`birthgate worker: ${stopSignal ?? 'stop'} — no new tasks; draining ${inFlight} in-flight activit${inFlight === 1 ? 'y' : 'ies'} (up to ${drainMs / 1000} s; a second signal exits at once)`);
    process.once('SIGINT', second);
    process.once('SIGTERM', second);
    const started = Date.now();
    worker.shutdown();
    let timedOut = false;
    const graceTimer = setTimeout(() => {
      const n = worker.getStatus().numInFlightActivities;
      if (worker.getState() !== 'STOPPED' && n > 0) {
        log(`birthgate worker: drain timed out with ${n} activit${n === 1 ? 'y' : 'ies'} in flight; cancelling (Temporal retries each attempt on another worker)`);
      }
    }, drainMs);
    try {
      await run;
    } catch (err) {
      // Once the stop is asked for, however the run ends is the end of the drain. The SDK may also fail
      // on its way down (a local activity still running at the force time: "Workflow execution context
      // should have been disposed first") and keep native handles open: the caller then exits.
      forced = true;
      log(err instanceof GracefulShutdownPeriodExpiredError
        ? `birthgate worker: activities did not stop within ${FORCE_AFTER_DRAIN_MS / 1000} s of their cancellation; giving up`
        : `birthgate worker: the worker failed while stopping (${(err as Error).message}); giving up`);
    } finally {
      clearTimeout(graceTimer);
    }
    // The SDK waits past the grace time only for tasks still running then (it cancels the activities):
    // a run that ends after it is a drain that timed out, even if the cancellations were quick.
    const elapsed = Date.now() - started;
    timedOut = forced || elapsed >= drainMs;
    log(timedOut ? 'birthgate worker: stopped; the drain timed out' : `birthgate worker: drained in ${(elapsed / 1000).toFixed(1)} s; stopped`);
    code = timedOut ? 1 : 0;
  } finally {
    process.off('SIGINT', second);
    process.off('SIGTERM', second);
    gauges?.stop();
    // After a forced stop an activity may still hold a pooled client (a query the database has not
    // answered): pool.end() would wait for it, so the close is bounded and the caller told.
    const closing = Promise.all([connection?.close().catch(() => undefined), pool.end().catch(() => undefined)]);
    if (!(await Promise.race([closing.then(() => true), new Promise<false>((r) => setTimeout(r, 3_000, false).unref())]))) forced = true;
  }
  return { code, closed: !forced };
}
