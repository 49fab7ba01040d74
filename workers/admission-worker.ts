// The admission worker: runs dotBirthAdmit / dotBirthRollback and their activities on one task queue.
// Production (`birthgate worker`, workers/serve.ts) passes the production bundle built once by
// `birthgate worker build` (workers/bundle.ts) and its build id; tests and the benchmark pass the
// bundle of every workflow (bundleAdmissionWorkflows: workflows/index.ts, incl. the benchmark-only
// dotBirthAdmitLocal) or workflowsPath. The pg pool is sized to the activity slots: one connection
// per running activity.
import type { Duration } from '@temporalio/common';
import { bundleWorkflowCode, type NativeConnection, Runtime, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { createActivities, type ActivityHooks } from '../activities/index.ts';
import type { Pool } from '../db/pool.ts';
import { observeActivities } from '../observability/activity-interceptor.ts';

/** Every workflow, the benchmark's variant included: tests and bench/ bundle this. */
export const admissionWorkflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
/** What the production worker registers (no benchmark-only workflows). */
export const productionWorkflowsPath = fileURLToPath(new URL('./production-workflows.ts', import.meta.url));

/**
 * Modules the workflow bundle evaluates once per reusable V8 context instead of once per workflow run
 * (the SDK's bundlerOptions.preloadModules): the contracts' zod/mini schemas, made ready to be frozen.
 * workflows/preload.ts says what may be listed and why.
 */
export const PRELOADED_MODULES: readonly string[] = [fileURLToPath(new URL('../workflows/preload.ts', import.meta.url))];

/** The worker deployment name the build id is reported under (no versioning routing; README "Versioning"). */
export const DEPLOYMENT_NAME = 'birthgate';

/** Activity slots per worker; the pool's `max` must equal it (createAdmissionPool). */
export const DEFAULT_ACTIVITY_SLOTS = 20;

export type AdmissionWorkerOptions = {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  hooks?: ActivityHooks;
  maxConcurrentActivityTaskExecutions?: number;
  /**
   * The code's build id (workers/bundle.ts). Reported to the server as this worker's deployment version
   * with Worker Versioning OFF: it is recorded on every workflow task the worker completes and shown
   * on its pollers, but task routing is unchanged. Unset: the SDK's default (its version + bundle hash).
   */
  buildId?: string;
  /** Shown in the Web UI and in history for every task this worker completed (SDK default: pid@host). */
  identity?: string;
  /** After shutdown(): how long in-flight tasks may finish before activities are cancelled. */
  shutdownGraceTime?: Duration;
  /** After shutdown(): when run() gives up and rejects with GracefulShutdownPeriodExpiredError. */
  shutdownForceTime?: Duration;
} & ({ workflowBundle: WorkflowBundleOption; workflowsPath?: never } | { workflowsPath: string; workflowBundle?: never });

export async function createAdmissionWorker(o: AdmissionWorkerOptions): Promise<Worker> {
  const slots = o.maxConcurrentActivityTaskExecutions ?? DEFAULT_ACTIVITY_SLOTS;
  if (o.pool.options.max !== undefined && o.pool.options.max < slots) {
    throw new Error(`pg pool max ${o.pool.options.max} is below the ${slots} activity slots; size it with createAdmissionPool`);
  }
  // An idle connection dropped by the server (restart, failover, pg_terminate_backend) is discarded by
  // the pool; without a listener node would treat it as an uncaught error and kill the worker.
  if (o.pool.listenerCount('error') === 0) {
    // Through the runtime's logger (installed by Worker.create below at the latest): one stream, one format.
    o.pool.on('error', (err) => Runtime.instance().logger.warn(`birthgate worker: idle database connection lost: ${err.message}`));
  }
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace,
    taskQueue: o.taskQueue,
    ...(o.workflowBundle
      ? { workflowBundle: o.workflowBundle }
      : { workflowsPath: o.workflowsPath, bundlerOptions: { preloadModules: [...PRELOADED_MODULES] } }),
    ...(o.identity ? { identity: o.identity } : {}),
    // `buildId` alone is deprecated in SDK 1.24; workerDeploymentOptions with useWorkerVersioning
    // false is its replacement: the version is reported, the task queue stays unversioned.
    ...(o.buildId ? { workerDeploymentOptions: { version: { deploymentName: DEPLOYMENT_NAME, buildId: o.buildId }, useWorkerVersioning: false } } : {}),
    ...(o.shutdownGraceTime !== undefined ? { shutdownGraceTime: o.shutdownGraceTime } : {}),
    ...(o.shutdownForceTime !== undefined ? { shutdownForceTime: o.shutdownForceTime } : {}),
    activities: createActivities({ pool: o.pool, hooks: o.hooks }),
    // Log lines with code and permit id; the Schedules' ticks measured (drift gauges, schedule lag).
    interceptors: { activity: [observeActivities()] },
    // Poller settings stay at the SDK defaults (10 workflow-task / 10 activity-task pollers, no
    // autoscaling): on the dev server the start→result latency was the server's transfer-queue poll
    // limit (see stack/temporal.ts), not pollers; autoscaling pollers measured within noise. Keep the
    // slots well above the 10 activity pollers: each poll holds a slot, and eager activity dispatch
    // (activity started in the workflow-task response, no matching round trip) needs a free one — with
    // 5 slots the echo workflow took 450 ms instead of 250 ms. bench/admission.ts's echo worker matches.
    maxConcurrentActivityTaskExecutions: slots,
  });
}

/**
 * Bundle every workflow (workflows/index.ts, the benchmark's variant included) once; webpack takes a
 * few seconds, so reuse the result for every worker. For tests and bench/ — the production worker
 * runs the prebuilt production bundle (workers/bundle.ts).
 */
export async function bundleAdmissionWorkflows(): Promise<{ code: string }> {
  return bundleWorkflowCode({ workflowsPath: admissionWorkflowsPath, logger: quietBundlerLogger, preloadModules: [...PRELOADED_MODULES] });
}

const quiet = () => undefined;
export const quietBundlerLogger = { trace: quiet, debug: quiet, info: quiet, warn: console.warn, error: console.error, log: quiet };
