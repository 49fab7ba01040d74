// The worker process: `node --import tsx workers/main.ts`. Connects to PostgreSQL as the
// non-superuser birthgate_worker role (BIRTHGATE_WORKER_DATABASE_URL) and to Temporal, bundles the
// workflows once, runs until SIGINT/SIGTERM (the Temporal runtime turns them into worker.shutdown():
// in-flight tasks finish), then closes the pool and the connection.
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../config/index.ts';
import { createPool } from '../db/pool.ts';
import { type ActivityHooks, CrashPoint } from '../activities/hooks.ts';
import { bundleAdmissionWorkflows, createAdmissionWorker, DEFAULT_ACTIVITY_SLOTS } from './admission-worker.ts';

/** Test hook: SIGKILL this process at a named point inside an activity. Honoured only when NODE_ENV=test. */
function crashHooks(env: NodeJS.ProcessEnv): ActivityHooks | undefined {
  const at = env.BIRTHGATE_TEST_CRASH_AT;
  if (env.NODE_ENV !== 'test' || !at) return undefined;
  if (!(CrashPoint as readonly string[]).includes(at)) throw new Error(`BIRTHGATE_TEST_CRASH_AT must be one of ${CrashPoint.join(', ')}`);
  return {
    at(point) {
      if (point === at) process.kill(process.pid, 'SIGKILL');
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.workerDatabaseUrl) throw new Error('BIRTHGATE_WORKER_DATABASE_URL is required (the birthgate_worker role, never a superuser)');
  const address = config.externalTemporalAddress ?? `127.0.0.1:${config.temporalPort}`;
  const slots = DEFAULT_ACTIVITY_SLOTS;

  const workflowBundle = await bundleAdmissionWorkflows();
  const pool = createPool(config.workerDatabaseUrl, { max: slots, applicationName: 'birthgate-worker' });
  const connection = await NativeConnection.connect({ address });
  try {
    const worker = await createAdmissionWorker({
      connection,
      namespace: config.namespace,
      taskQueue: config.taskQueue,
      pool,
      workflowBundle,
      hooks: crashHooks(process.env),
      maxConcurrentActivityTaskExecutions: slots,
    });
    console.log(`birthgate worker: task queue ${config.taskQueue} on ${address} (${config.namespace})`);
    await worker.run();
  } finally {
    await pool.end();
    await connection.close();
  }
}

await main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
