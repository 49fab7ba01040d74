// The admission worker: runs dotBirthAdmit / dotBirthRollback and their activities on one task queue.
// Production passes a prebuilt workflow bundle (bundled once at start, see main.ts); tests may pass
// workflowsPath. The pg pool is sized to the activity slots: one connection per running activity.
import { bundleWorkflowCode, type NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { createActivities, type ActivityHooks } from '../activities/index.ts';
import type { Pool } from '../db/pool.ts';

export const admissionWorkflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** Activity slots per worker; the pool's `max` must equal it (createAdmissionPool). */
export const DEFAULT_ACTIVITY_SLOTS = 20;

export type AdmissionWorkerOptions = {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  hooks?: ActivityHooks;
  maxConcurrentActivityTaskExecutions?: number;
} & ({ workflowBundle: WorkflowBundleOption; workflowsPath?: never } | { workflowsPath: string; workflowBundle?: never });

export async function createAdmissionWorker(o: AdmissionWorkerOptions): Promise<Worker> {
  const slots = o.maxConcurrentActivityTaskExecutions ?? DEFAULT_ACTIVITY_SLOTS;
  if (o.pool.options.max !== undefined && o.pool.options.max < slots) {
    throw new Error(`pg pool max ${o.pool.options.max} is below the ${slots} activity slots; size it with createAdmissionPool`);
  }
  // An idle connection dropped by the server (restart, failover, pg_terminate_backend) is discarded by
  // the pool; without a listener node would treat it as an uncaught error and kill the worker.
  if (o.pool.listenerCount('error') === 0) {
    o.pool.on('error', (err) => console.warn(`birthgate worker: idle database connection lost: ${err.message}`));
  }
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace,
    taskQueue: o.taskQueue,
    ...(o.workflowBundle ? { workflowBundle: o.workflowBundle } : { workflowsPath: o.workflowsPath }),
    activities: createActivities({ pool: o.pool, hooks: o.hooks }),
    // Poller settings stay at the SDK defaults (10 workflow-task / 10 activity-task pollers, no
    // autoscaling): on the dev server the start→result latency was the server's transfer-queue poll
    // limit (see stack/temporal.ts), not pollers; autoscaling pollers measured within noise. Keep the
    // slots well above the 10 activity pollers: each poll holds a slot, and eager activity dispatch
    // (activity started in the workflow-task response, no matching round trip) needs a free one — with
    // 5 slots the echo workflow took 450 ms instead of 250 ms. bench/admission.ts's echo worker matches.
    maxConcurrentActivityTaskExecutions: slots,
  });
}

/** Bundle the workflows once (webpack takes a second or two); reuse the result for every worker. */
export async function bundleAdmissionWorkflows(): Promise<{ code: string }> {
  return bundleWorkflowCode({ workflowsPath: admissionWorkflowsPath, logger: quietBundlerLogger });
}

const quiet = () => undefined;
const quietBundlerLogger = { trace: quiet, debug: quiet, info: quiet, warn: console.warn, error: console.error, log: quiet };
