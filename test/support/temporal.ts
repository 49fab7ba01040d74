// Temporal pieces for tests: a client on the harness's dev server, one workflow bundle per test
// process (webpack is the slow part), and an in-process admission worker on a task queue of its own.
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import type { ActivityHooks } from '../../activities/index.ts';
import type { Pool } from '../../db/pool.ts';
import { bundleAdmissionWorkflows, createAdmissionWorker } from '../../workers/admission-worker.ts';
import { waitFor } from '../../stack/ports.ts';
import { testEnv } from './env.ts';

// Worker lifecycle chatter at INFO drowns test output; warnings and errors still show.
Runtime.install({ logger: new DefaultLogger('WARN') });

let bundle: Promise<{ code: string }> | undefined;
export const workflowBundle = () => (bundle ??= bundleAdmissionWorkflows());

export const uniqueTaskQueue = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

export async function temporalClient(): Promise<{ client: Client; close(): Promise<void> }> {
  const { temporalAddress, namespace } = testEnv();
  const connection = await Connection.connect({ address: temporalAddress });
  return { client: new Client({ connection, namespace }), close: () => connection.close() };
}

export type RunningWorker = { worker: Worker; stop(): Promise<void> };

/** The real admission worker (real activities on `pool`), running until stop(); every workflow's bundle unless given one. */
export async function startAdmissionWorker(opts: { taskQueue: string; pool: Pool; hooks?: ActivityHooks; workflowBundle?: WorkflowBundleOption }): Promise<RunningWorker> {
  const { temporalAddress, namespace } = testEnv();
  const connection = await NativeConnection.connect({ address: temporalAddress });
  const worker = await createAdmissionWorker({
    connection,
    namespace,
    taskQueue: opts.taskQueue,
    pool: opts.pool,
    hooks: opts.hooks,
    workflowBundle: opts.workflowBundle ?? await workflowBundle(),
    maxConcurrentActivityTaskExecutions: opts.pool.options.max ?? 10,
  });
  return running(worker, connection);
}

/** A worker with the real workflows and the given (mock) activities. */
export async function startMockWorker(opts: { taskQueue: string; activities: object }): Promise<RunningWorker> {
  const { temporalAddress, namespace } = testEnv();
  const connection = await NativeConnection.connect({ address: temporalAddress });
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: opts.taskQueue,
    workflowBundle: await workflowBundle(),
    activities: opts.activities,
  });
  return running(worker, connection);
}

function running(worker: Worker, connection: NativeConnection): RunningWorker {
  const done = worker.run();
  return {
    worker,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
      await connection.close();
    },
  };
}

/** Poll `probe` until it returns a value (not undefined) or the deadline passes. */
export function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  return waitFor(what, timeoutMs, probe);
}
