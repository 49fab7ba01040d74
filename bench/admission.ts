// Admission throughput and latency (issue 4 "Benchmark"): admissions/s and p50/p99 start→FINALIZED at
// concurrency 1, 10 and 50, measured in the same run for
//   (a) the same SQL calls as the activities, made directly (the database floor),
//   (b) an echo workflow with as many no-op activities (the Temporal floor), also as local activities,
//   (c) birthgate: admitByCode(…, { wait: true }) through the real worker; (c2) its local-activity variant.
// Closed loop: `concurrency` callers each take the next code until `count` admissions are done.
import { randomBytes, randomInt } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { createActivities } from '../activities/index.ts';
import { admitByCode } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { createPool } from '../db/pool.ts';
import { prepareAdmissionWorld } from '../test/support/admission-world.ts';
import { bundleAdmissionWorkflows, createAdmissionWorker, DEFAULT_ACTIVITY_SLOTS } from '../workers/admission-worker.ts';
import type { BenchContext, BenchReport } from './context.ts';
import { echoActivities } from './echo-activities.ts';

const STEPS = 4; // preflight, issuePermit, insertGovernedRow, confirmFinalized
const LEVELS = [1, 10, 50];
const count = (c: number) => Math.max(Number(process.env.BIRTHGATE_BENCH_MIN ?? 40), c * 5);

type Row = { variant: string; concurrency: number; n: number; perSec: number; p50: number; p99: number };

async function measure(variant: string, concurrency: number, n: number, one: (i: number) => Promise<unknown>): Promise<Row> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < n; i = next++) {
        const t = performance.now();
        await one(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]!;
  return { variant, concurrency, n, perSec: n / seconds, p50: pct(50), p99: pct(99) };
}

export async function benchAdmission(ctx: BenchContext): Promise<BenchReport[]> {
  const db = await ctx.freshDatabase('admission');
  const world = await prepareAdmissionWorld(db.pool, db.url);
  const pool = createPool(world.workerUrl, { max: DEFAULT_ACTIVITY_SLOTS, applicationName: 'bench-admission' });
  const run = randomBytes(3).toString('hex');
  const runDigits = randomInt(100_000, 1_000_000); // codes follow the dot_tools rule DOT-<digits>
  const nativeConnection = await NativeConnection.connect({ address: ctx.temporalAddress });
  const connection = await Connection.connect({ address: ctx.temporalAddress });
  const client = new Client({ connection, namespace: ctx.namespace });
  const queues = { birthgate: `bench-admit-${run}`, echo: `bench-echo-${run}` };
  // The same worker settings for both: one worker, the same activity slots, SDK-default pollers (see
  // createAdmissionWorker), a prebuilt bundle. The dev server's dynamic config is in stack/temporal.ts.
  const birthgateWorker = await createAdmissionWorker({
    connection: nativeConnection,
    namespace: ctx.namespace,
    taskQueue: queues.birthgate,
    pool,
    workflowBundle: await bundleAdmissionWorkflows(),
  });
  const echoWorker = await Worker.create({
    connection: nativeConnection,
    namespace: ctx.namespace,
    taskQueue: queues.echo,
    workflowsPath: fileURLToPath(new URL('./echo-workflow.ts', import.meta.url)),
    activities: echoActivities,
    maxConcurrentActivityTaskExecutions: DEFAULT_ACTIVITY_SLOTS,
  });
  const running = [birthgateWorker.run(), echoWorker.run()];
  const acts = createActivities({ pool });
  let serial = 0;
  const code = () => `DOT-${runDigits}${String(serial++).padStart(6, '0')}`;

  const variants: Record<string, () => Promise<unknown>> = {
    'a. SQL floor (activities called directly)': async () => {
      const c = code();
      const key = admissionWorkflowId('dot_tools', c);
      await acts.preflight({ collection: 'dot_tools', code: c });
      const p = await acts.issuePermit({ idempotencyKey: key, collection: 'dot_tools', code: c, ttlSeconds: 900, actor: 'bench', workflowId: key, runId: 'bench' });
      await acts.insertGovernedRow({ permitId: p.permitId, collection: 'dot_tools', code: c, fields: {}, breakGlass: null });
      await acts.confirmFinalized({ permitId: p.permitId });
    },
    'b. echo workflow (4 no-op activities)': () =>
      client.workflow.execute('echoAdmission', { taskQueue: queues.echo, workflowId: `bench-echo-${run}-${serial++}`, args: [STEPS] }),
    'b2. echo workflow (4 no-op local activities)': () =>
      client.workflow.execute('echoAdmissionLocal', { taskQueue: queues.echo, workflowId: `bench-echol-${run}-${serial++}`, args: [STEPS] }),
    'c. birthgate dotBirthAdmit': () => admitByCode(client, { code: code(), requestedBy: 'bench' }, { taskQueue: queues.birthgate, wait: true }),
    'c2. birthgate, SQL steps as local activities': () => {
      const c = code();
      return client.workflow.execute('dotBirthAdmitLocal', {
        taskQueue: queues.birthgate,
        workflowId: admissionWorkflowId('dot_tools', c),
        args: [{ code: c, requestedBy: 'bench' }],
      });
    },
  };

  const rows: Row[] = [];
  try {
    for (const one of Object.values(variants)) await one(); // warm every path once
    for (const c of LEVELS) {
      for (const [name, one] of Object.entries(variants)) {
        ctx.log(`admission: ${name} at concurrency ${c}`);
        rows.push(await measure(name, c, count(c), one));
      }
    }
  } finally {
    birthgateWorker.shutdown();
    echoWorker.shutdown();
    await Promise.allSettled(running);
    await nativeConnection.close();
    await connection.close();
    await pool.end();
    await db.dispose();
  }

  const echoAt = (c: number) => rows.find((r) => r.concurrency === c && r.variant.startsWith('b.'))!.perSec;
  return [
    {
      title: 'Admissions: throughput and start→FINALIZED latency',
      rows: rows.map((r) => ({
        variant: r.variant,
        concurrency: r.concurrency,
        admissions: r.n,
        'per s': r.perSec,
        'p50 ms': r.p50,
        'p99 ms': r.p99,
        'vs echo': r.perSec / echoAt(r.concurrency),
      })),
      notes: [
        'targets (issue 4): birthgate ≥ 0.8 × echo throughput; ≥ 100/s at concurrency 50; p99 ≤ 300 ms at concurrency 10',
        'one worker process hosts both task queues; Temporal dev server, PostgreSQL and the client share the machine',
      ],
    },
  ];
}
