// Scale-out on the real Temporal server (issue 10 item 1): one, two and three admission worker
// processes (`workers/main.ts`, the compose worker's process, each with its own pool of
// DEFAULT_ACTIVITY_SLOTS connections as birthgate_worker) on one task queue, and the admission
// throughput of each count: a closed loop of `CONCURRENCY` callers admitting fresh codes with
// admitByCode(…, { wait: true }). Beside each row, the PostgreSQL connections the workers and the
// Temporal server held at the busiest sample — the figures README "Sizing a production cluster" is
// built from. Also `compareEngines`: the admission bench's rows on the real server divided by the
// same rows on the dev server, measured in the same run (bench/run.ts --engine both).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { admitByCode } from '../client/admissions.ts';
import { projectRoot } from '../config/index.ts';
import { withClient } from '../db/pool.ts';
import { installBaseline } from '../fixtures/baseline.ts';
import { loadWorld } from '../fixtures/world.ts';
import { workerUrlFrom } from '../stack/endpoints.ts';
import { waitFor } from '../stack/ports.ts';
import { applyStepsSql, packetSteps } from '../test/support/packet-sql.ts';
import { installWorkerRole, workerPassword } from '../test/support/packet-world.ts';
import { DEFAULT_ACTIVITY_SLOTS } from '../workers/admission-worker.ts';
import { writeProductionBundle } from '../workers/bundle.ts';
import type { BenchContext, BenchReport } from './context.ts';

const WORKER_COUNTS = [1, 2, 3];
const CONCURRENCY = Number(process.env.BIRTHGATE_BENCH_SCALE_CONCURRENCY ?? 30);
const COUNT = Number(process.env.BIRTHGATE_BENCH_SCALE_COUNT ?? 600);
const WARM = 30;

type Sample = { worker: number; temporal: number };

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function startWorker(env: NodeJS.ProcessEnv): { child: ChildProcess; exited: Promise<number | null>; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'workers', 'main.ts')], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + d).slice(-4000)));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-4000)));
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))), output: () => out };
}

export async function benchScaleOut(ctx: BenchContext & { engine?: string }): Promise<BenchReport[]> {
  if (ctx.engine !== 'server') throw new Error('scale-out measures the real Temporal server: bench/run.ts starts one for it');
  const db = await ctx.freshDatabase('scaleout');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'birthgate-scaleout-'));
  const connection = await Connection.connect({ address: ctx.temporalAddress });
  const client = new Client({ connection, namespace: ctx.namespace });
  const rows: Array<Record<string, string | number>> = [];
  try {
    ctx.log('scale-out: the test-scale world, the packet, birthgate_worker, the production bundle …');
    await installBaseline(db.pool);
    await loadWorld(db.pool, { scale: 'test' });
    await applyStepsSql(db.pool, Math.max(...packetSteps().map((s) => s.meta.step)));
    await installWorkerRole(db.pool, workerPassword);
    await db.pool.query('VACUUM (ANALYZE)');
    await writeProductionBundle(home);
    const workerUrl = workerUrlFrom(db.url, workerPassword);
    const digits = randomInt(100_000, 1_000_000);
    let serial = 0;
    const code = () => `DOT-${digits}${String(serial++).padStart(6, '0')}`;
    let base: number | undefined;

    for (const n of WORKER_COUNTS) {
      const taskQueue = `bench-scale-${n}-${randomBytes(3).toString('hex')}`;
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', BIRTHGATE_HOME: home,
        BIRTHGATE_WORKER_DATABASE_URL: workerUrl, TEMPORAL_ADDRESS: ctx.temporalAddress, TEMPORAL_NAMESPACE: ctx.namespace,
        BIRTHGATE_TASK_QUEUE: taskQueue, BIRTHGATE_LOG_FORMAT: 'text',
      };
      const workers = Array.from({ length: n }, () => startWorker(env));
      try {
        await waitFor(`${n} worker(s) polling ${taskQueue}`, 120_000, async () => {
          for (const w of workers) if (w.child.exitCode !== null) throw new Error(`a worker exited: ${w.output()}`);
          const d = await client.workflowService.describeTaskQueue({ namespace: ctx.namespace, taskQueue: { name: taskQueue }, taskQueueType: 1 });
          return new Set((d.pollers ?? []).map((p) => p.identity)).size >= n ? true : undefined;
        });
        const admit = async () => {
          const c = code();
          const a = await admitByCode(client, { code: c, requestedBy: 'bench-scale-out' }, { taskQueue, wait: true });
          if (!a.result) throw new Error(`admission of ${c} did not finalize: ${JSON.stringify(a)}`);
        };
        for (let i = 0; i < WARM; i += CONCURRENCY) await Promise.all(Array.from({ length: Math.min(CONCURRENCY, WARM - i) }, admit));
        ctx.log(`scale-out: ${n} worker process(es), ${COUNT} admissions at concurrency ${CONCURRENCY}`);
        // Busiest connection counts while the loop runs: the workers' role and Temporal's.
        const peak: Sample = { worker: 0, temporal: 0 };
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            const r = await withClient(ctx.adminUrl, (c) => c.query<{ u: string; n: number }>(
              `SELECT usename AS u, count(*)::int AS n FROM pg_stat_activity WHERE usename IN ('birthgate_worker', 'temporal') GROUP BY usename`)).catch(() => undefined);
            for (const row of r?.rows ?? []) {
              if (row.u === 'birthgate_worker') peak.worker = Math.max(peak.worker, row.n);
              else peak.temporal = Math.max(peak.temporal, row.n);
            }
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
        })();
        const lat: number[] = [];
        let next = 0;
        const t0 = performance.now();
        await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
          for (let i = next++; i < COUNT; i = next++) {
            const t = performance.now();
            await admit();
            lat.push(performance.now() - t);
          }
        }));
        const perSec = COUNT / ((performance.now() - t0) / 1000);
        sampling = false;
        await sampler;
        lat.sort((a, b) => a - b);
        base ??= perSec;
        rows.push({
          'worker processes': n,
          concurrency: CONCURRENCY,
          n: COUNT,
          'per s': perSec,
          'vs 1 worker': `${(perSec / base).toFixed(2)}×`,
          'p50 ms': pct(lat, 50),
          'p95 ms': pct(lat, 95),
          'max ms': lat[lat.length - 1]!,
          'pg conns: workers (peak)': peak.worker,
          'pg conns: temporal (peak)': peak.temporal,
        });
      } finally {
        for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
        await Promise.all(workers.map((w) => w.exited));
      }
    }
  } finally {
    await connection.close();
    fs.rmSync(home, { recursive: true, force: true });
    await db.dispose();
  }
  return [{
    title: `Scale-out on the real Temporal server: 1–3 admission worker processes on one task queue (test-scale world)`,
    rows,
    notes: [
      `each worker process: its own pool of ${DEFAULT_ACTIVITY_SLOTS} connections as birthgate_worker (DEFAULT_ACTIVITY_SLOTS), SDK-default pollers; the peak columns are pg_stat_activity samples every 0.5 s`,
      `every process shares this machine (${os.cpus().length} cores): the Temporal server, PostgreSQL (estate and Temporal's databases), the client and the workers — more workers here means more processes on the same cores, not more capacity`,
    ],
  }];
}

/**
 * The same admission rows on both engines, real server ÷ dev server: the throughput ratio (above 1:
 * the real server is faster) and the p50 latency ratio (below 1: faster), by variant and concurrency.
 */
export function compareEngines(dev: BenchReport[], server: BenchReport[]): BenchReport {
  const rows: Array<Record<string, string | number>> = [];
  const devRows = dev.flatMap((r) => r.rows);
  for (const s of server.flatMap((r) => r.rows)) {
    if (typeof s['per s'] !== 'number' || s.concurrency === undefined) continue;
    const d = devRows.find((r) => r.variant === s.variant && r.concurrency === s.concurrency);
    if (!d || typeof d['per s'] !== 'number') continue;
    const p50 = (r: Record<string, string | number>) => (typeof r['p50 ms'] === 'number' ? r['p50 ms'] : undefined);
    rows.push({
      variant: String(s.variant),
      concurrency: s.concurrency,
      'dev per s': d['per s'],
      'server per s': s['per s'],
      'rate server/dev': `${(s['per s'] / d['per s']).toFixed(2)}×`,
      'p50 server/dev': p50(s) && p50(d) ? `${(p50(s)! / p50(d)!).toFixed(2)}× time` : '—',
    });
  }
  // Rows that never touch Temporal (the plain insert, the SQL floor) are the control: their ratio is how
  // much the machine itself changed between the two halves (other load), which the engine ratios carry too.
  const control = rows.filter((r) => /^(0|a)\./.test(String(r.variant))).map((r) => `${String(r.variant).slice(0, 2)} ${r['rate server/dev']}`);
  return {
    title: 'Admissions: the real Temporal server (PostgreSQL persistence) against the dev server (SQLite in memory), same run',
    rows,
    notes: [
      'both on this machine, one after the other, on the same PostgreSQL cluster (the real server keeps its own databases there, as `birthgate stack up --temporal server` does)',
      ...(control.length ? [`control (no Temporal involved): ${control.join(', ')} — an engine ratio closer to 1 than these is within the machine's own drift between the halves`] : []),
    ],
  };
}
