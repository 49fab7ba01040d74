// The Temporal dev server restarted mid-admission (persisted db file) → the admission completes,
// born once (issue 4). Two moments: an activity in flight (its insert held by a table lock while the
// server goes down) and a stuck birth parked for an operator across the restart.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { randomInt } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { admitByCode, breakGlass, status } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { freePort } from '../stack/ports.ts';
import { startTemporalDevServer, type RunningTemporal } from '../stack/temporal.ts';
import { createAdmissionWorker } from '../workers/admission-worker.ts';
import { freshCode, written } from './support/admission-harness.ts';
import { prepareAdmissionWorld } from './support/admission-world.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';
import { testEnv } from './support/env.ts';
import { eventually, uniqueTaskQueue, workflowBundle } from './support/temporal.ts';

let scratch: string;
let port: number;
let uiPort: number;
let server: RunningTemporal | undefined;
let db: FreshDatabase;
let workerPool: Pool;
let worker: { w: Worker; run: Promise<void>; connection: NativeConnection } | undefined;
const taskQueue = uniqueTaskQueue('restart');

async function startServer(): Promise<void> {
  server = await startTemporalDevServer({
    cli: testEnv().temporalCli,
    port,
    uiPort,
    namespace: 'default',
    dbFile: path.join(scratch, 'temporal.db'),
    logFile: path.join(scratch, 'temporal.log'),
    headless: true,
  });
}

async function withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
  try {
    return await fn(new Client({ connection }));
  } finally {
    await connection.close();
  }
}

before(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bg-restart-'));
  port = await freePort();
  uiPort = await freePort();
  await startServer();
  db = await freshDatabase('restart');
  db.pool.on('error', () => undefined);
  const { workerUrl } = await prepareAdmissionWorld(db.pool, db.url);
  workerPool = createPool(workerUrl, { max: 10 });
  workerPool.on('error', () => undefined);
  const connection = await NativeConnection.connect({ address: `127.0.0.1:${port}` });
  const w = await createAdmissionWorker({ connection, namespace: 'default', taskQueue, pool: workerPool, workflowBundle: await workflowBundle(), maxConcurrentActivityTaskExecutions: 10 });
  worker = { w, run: w.run(), connection };
});

after(async () => {
  try {
    if (worker) {
      if (worker.w.getState() === 'RUNNING') worker.w.shutdown();
      // Bounded: a drain that hangs must not keep this file's own dev server alive past the suite.
      await Promise.race([worker.run.catch(() => undefined), new Promise((r) => setTimeout(r, 15_000))]);
      await worker.connection.close().catch(() => undefined);
    }
  } finally {
    await server?.stop();
    await workerPool?.end().catch(() => undefined);
    await db?.dispose();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
});

async function restartServer(): Promise<void> {
  await server!.stop();
  await startServer();
}

test('a restart while the insert activity is in flight: the admission completes, born once', async () => {
  const code = freshCode();
  // Hold the table so the insert activity blocks inside its transaction while the server goes down.
  const holder = await db.pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE');
    await withClient((c) => admitByCode(c, { code, requestedBy: 'restart-test' }, { taskQueue }));
    await eventually(async () => {
      const { rows } = await db.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND usename = 'birthgate_worker' AND wait_event_type = 'Lock'`,
      );
      return rows.length > 0 ? true : undefined;
    }, 'the insert activity waiting on the table lock', 30_000);
    await restartServer();
  } finally {
    await holder.query('ROLLBACK');
    holder.release();
  }
  const result = await withClient((c) => c.workflow.getHandle(admissionWorkflowId('dot_tools', code)).result());
  assert.equal(result.stage, 'FINALIZED');
  const w = await written(db.pool, code);
  assert.equal(w.rows, 1);
  assert.equal(w.births.length, 1);
  assert.deepEqual(w.permits.map((p) => p.state), ['FINALIZED']);
});

test('a stuck birth survives a restart and is admitted by break-glass afterwards', async () => {
  const code = `Restart_${randomInt(1e8, 1e9)}`; // fails the dot_tools family rule: parks as BLOCKED
  await withClient((c) => admitByCode(c, { code, requestedBy: 'restart-test' }, { taskQueue }));
  await eventually(
    () => withClient(async (c) => ((await status(c, { code })).state?.stage === 'BLOCKED' ? true : undefined)),
    'the admission parked as BLOCKED',
  );
  await restartServer();
  const s = await withClient((c) => status(c, { code }));
  assert.equal(s.status, 'RUNNING');
  assert.equal(s.state?.stage, 'BLOCKED');
  await withClient((c) => breakGlass(c, db.pool, { code }, { actor: 'ops@restart.test', reason: 'restart drill', approvalId: 'CHG-7' }));
  const result = await withClient((c) => c.workflow.getHandle(admissionWorkflowId('dot_tools', code)).result());
  assert.equal(result.stage, 'FINALIZED');
  assert.equal(result.breakGlass, true);
  const w = await written(db.pool, code);
  assert.equal(w.rows, 1);
  assert.equal(w.births.length, 1);
  assert.equal(w.breakGlass, 1);
});
