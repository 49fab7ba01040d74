// The Schedules' idle cost (issue 9 item 2a "Benchmarks"): CPU per hour that the permit-expiry sweep and
// the drift watch add on an idle estate, on the dev server. Nothing else happens meanwhile, so what a
// tick costs is all they cost: its workflow and activity tasks in the worker, the server's work to
// start and record a workflow, and the SQL in PostgreSQL.
//
// Method. The real admission worker (as birthgate_worker) runs in this process on its own task queue,
// against a world at BIRTHGATE_BENCH_SCHEDULES_SCALE (test by default; prod = 1.1M births) with the
// packet through its last step. CPU is read from /proc on this machine: this process (the worker, and a
// client asleep), the Temporal dev server's process, and the whole PostgreSQL cluster (the postmaster
// with its reaped children, plus its live backends). Phases of equal length (BIRTHGATE_BENCH_SCHEDULES_SECONDS,
// 120 by default): the baseline — the worker polling, no Schedule — then each Schedule alone at a
// compressed interval (BIRTHGATE_BENCH_SCHEDULES_EVERY, 12 s: longer than the pool's 10 s idle timeout,
// so every tick opens its database connection as it does at the real 1 min), then the baseline again.
// Cost per tick = (phase − mean baseline) / ticks; per hour = per tick × 60 ticks (the declared 1 min).
// Ratios are against the baseline's own CPU per hour (an idle worker and servers); the two baselines'
// difference is printed as the noise.
import fs from 'node:fs';
import pg from 'pg';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { applySchedules, deleteSchedules, DRIFT_WATCH, PERMIT_EXPIRY, type ScheduleDecl, scheduleId } from '../client/schedules.ts';
import { createPool } from '../db/pool.ts';
import { installBaseline } from '../fixtures/baseline.ts';
import { loadWorld } from '../fixtures/world.ts';
import { workerUrlFrom } from '../stack/endpoints.ts';
import { applyStepsSql, packetSteps } from '../test/support/packet-sql.ts';
import { installWorkerRole, workerPassword } from '../test/support/packet-world.ts';
import { bundleAdmissionWorkflows, createAdmissionWorker, DEFAULT_ACTIVITY_SLOTS } from '../workers/admission-worker.ts';
import type { BenchContext, BenchReport } from './context.ts';

const SCALE = (process.env.BIRTHGATE_BENCH_SCHEDULES_SCALE ?? 'test') as 'prod' | 'test';
const PHASE_S = Number(process.env.BIRTHGATE_BENCH_SCHEDULES_SECONDS ?? 120);
const EVERY_MS = Number(process.env.BIRTHGATE_BENCH_SCHEDULES_EVERY ?? 12) * 1000;
const TICKS_PER_HOUR = 3_600_000 / 60_000; // both Schedules are declared every 1 min

const CLK_TCK = 100; // USER_HZ on Linux

/** utime, stime, cutime, cstime (seconds) and ppid of a process, from /proc/<pid>/stat; null when gone. */
function procStat(pid: number): { ppid: number; self: number; children: number } | null {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    const n = (i: number) => Number(f[i - 3]);
    return { ppid: n(4), self: (n(14) + n(15)) / CLK_TCK, children: (n(16) + n(17)) / CLK_TCK };
  } catch {
    return null;
  }
}

const pids = () => fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);

/** The dev server listening on `port` (its command line has start-dev and --port <port>), if it runs here. */
function temporalPid(address: string): number | null {
  const port = address.split(':').at(-1);
  for (const pid of pids()) {
    try {
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (args.includes('start-dev') && args[args.indexOf('--port') + 1] === port) return pid;
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

/** The cluster's CPU: the postmaster with its reaped children, plus every live child (backends, autovacuum, …). */
function clusterCpu(postmaster: number): number | null {
  const pm = procStat(postmaster);
  if (!pm) return null;
  let total = pm.self + pm.children;
  for (const pid of pids()) {
    const s = pid === postmaster ? null : procStat(pid);
    if (s?.ppid === postmaster) total += s.self;
  }
  return total;
}

type Sample = { worker: number; temporal: number | null; postgres: number | null };

function sample(temporal: number | null, postmaster: number | null): Sample {
  const u = process.cpuUsage();
  return {
    worker: (u.user + u.system) / 1e6,
    temporal: temporal === null ? null : (procStat(temporal)?.self ?? null),
    postgres: postmaster === null ? null : clusterCpu(postmaster),
  };
}

const diff = (a: Sample, b: Sample): Sample => ({
  worker: b.worker - a.worker,
  temporal: a.temporal === null || b.temporal === null ? null : b.temporal - a.temporal,
  postgres: a.postgres === null || b.postgres === null ? null : b.postgres - a.postgres,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchSchedules(ctx: BenchContext): Promise<BenchReport[]> {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') }); // the worker's state lines would drown the table
  } catch {
    // installed already (another benchmark of this run): keep it
  }
  const db = await ctx.freshDatabase('schedules');
  const taskQueue = `bench-schedules-${process.pid}`;
  const connection = await Connection.connect({ address: ctx.temporalAddress });
  const client = new Client({ connection, namespace: ctx.namespace });
  const native = await NativeConnection.connect({ address: ctx.temporalAddress });
  const pool = createPool(workerUrlFrom(db.url, workerPassword), { max: DEFAULT_ACTIVITY_SLOTS, applicationName: 'bench-schedules-worker' });
  try {
    ctx.log(`schedules: ${SCALE} world, packet through its last step …`);
    await installBaseline(db.pool);
    await loadWorld(db.pool, { scale: SCALE });
    await applyStepsSql(db.pool, Math.max(...packetSteps().map((s) => s.meta.step)));
    await installWorkerRole(db.pool, workerPassword);
    // Quiet the servers before measuring: no autovacuum of the fresh world, no checkpoint pending.
    await db.pool.query('VACUUM ANALYZE');
    await db.pool.query('CHECKPOINT');
    const postmaster = await postmasterPid(db.url);
    const temporal = temporalPid(ctx.temporalAddress);

    const worker = await createAdmissionWorker({
      connection: native, namespace: ctx.namespace, taskQueue, pool, workflowBundle: await bundleAdmissionWorkflows(),
    });
    const run = worker.run();
    try {
      await sleep(15_000); // pollers up, bundle loaded, the setup's garbage collected
      const phase = async (label: string, decl: ScheduleDecl | null) => {
        if (decl) await applySchedules(client, { taskQueue, schedules: [decl], everyMs: EVERY_MS });
        const taken = decl ? (await client.schedule.getHandle(scheduleId(taskQueue, decl.name)).describe()).info.numActionsTaken : 0;
        ctx.log(`schedules: ${label} for ${PHASE_S} s …`);
        const a = sample(temporal, postmaster);
        await sleep(PHASE_S * 1000);
        const b = sample(temporal, postmaster);
        const ticks = decl ? (await client.schedule.getHandle(scheduleId(taskQueue, decl.name)).describe()).info.numActionsTaken - taken : 0;
        if (decl) await deleteSchedules(client, { taskQueue, schedules: [decl] });
        await sleep(3_000); // the last tick finishes before the next phase
        return { label, ticks, cpu: diff(a, b) };
      };
      // The baseline before and after the two Schedules: their mean is the baseline, their difference the noise.
      const before = await phase('baseline: the worker polling, no Schedule', null);
      const sweep = await phase(`permit-expiry every ${EVERY_MS / 1000} s`, PERMIT_EXPIRY);
      const watch = await phase(`drift-watch every ${EVERY_MS / 1000} s`, DRIFT_WATCH);
      const afterwards = await phase('baseline again', null);
      const mean = (a: number | null, b: number | null) => (a === null || b === null ? null : (a + b) / 2);
      const base = { cpu: { worker: mean(before.cpu.worker, afterwards.cpu.worker)!, temporal: mean(before.cpu.temporal, afterwards.cpu.temporal),
                            postgres: mean(before.cpu.postgres, afterwards.cpu.postgres) } };
      const total = (c: Sample) => c.worker + (c.temporal ?? 0) + (c.postgres ?? 0);

      const perHour = (s: number | null) => (s === null ? null : s * (3600 / PHASE_S));
      const baseHour = { worker: perHour(base.cpu.worker)!, temporal: perHour(base.cpu.temporal), postgres: perHour(base.cpu.postgres) };
      const baseTotal = baseHour.worker + (baseHour.temporal ?? 0) + (baseHour.postgres ?? 0);
      const fmt = (v: number | null, digits = 1) => (v === null ? 'n/a' : v.toFixed(digits));
      const rows: Array<Record<string, string | number>> = [{
        schedule: 'baseline (idle worker + servers)', ticks: '-',
        'worker ms/tick': '-', 'temporal ms/tick': '-', 'postgres ms/tick': '-',
        'CPU s/h at 1 min': fmt(baseTotal), 'ratio to baseline': '1.00',
      }];
      for (const p of [sweep, watch]) {
        const per = (k: keyof Sample) => {
          const v = p.cpu[k];
          const b = base.cpu[k];
          return v === null || b === null || p.ticks === 0 ? null : ((v - b) / p.ticks) * 1000;
        };
        const total = (per('worker') ?? 0) + (per('temporal') ?? 0) + (per('postgres') ?? 0);
        const hour = (total / 1000) * TICKS_PER_HOUR;
        rows.push({
          schedule: p.label, ticks: p.ticks,
          'worker ms/tick': fmt(per('worker')), 'temporal ms/tick': fmt(per('temporal')), 'postgres ms/tick': fmt(per('postgres')),
          'CPU s/h at 1 min': fmt(hour, 2), 'ratio to baseline': fmt(hour / baseTotal, 3),
        });
      }
      return [{
        title: `Schedules: idle cost, CPU per hour at the declared 1 min (${SCALE} world, ${PHASE_S} s phases, ticks every ${EVERY_MS / 1000} s)`,
        rows,
        notes: [
          'per tick = (phase CPU − baseline CPU) / ticks; per hour = per tick × 60; ratio = that per hour / the baseline\'s own CPU per hour',
          `baseline per hour: worker ${fmt(baseHour.worker)} s, Temporal dev server ${fmt(baseHour.temporal)} s, PostgreSQL ${fmt(baseHour.postgres)} s; `
            + `the two baselines differ by ${fmt(Math.abs(perHour(total(before.cpu))! - perHour(total(afterwards.cpu))!))} s/h (the noise: a smaller difference per hour is not resolved)`,
          'CPU from /proc: this process (worker + sleeping client), the dev server\'s process, the PostgreSQL cluster (postmaster, reaped and live children)',
          'an idle estate: the sweep finds nothing to expire and no live permit to describe; the watch computes every dim and records nothing',
        ],
      }];
    } finally {
      await deleteSchedules(client, { taskQueue }).catch(() => undefined);
      worker.shutdown();
      await run;
    }
  } finally {
    await native.close();
    await connection.close();
    await pool.end();
    await db.dispose();
  }
}

/** The postmaster: the parent of a backend, read while that backend lives; null when the server is elsewhere. */
async function postmasterPid(url: string): Promise<number | null> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const backend = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    return procStat(backend)?.ppid ?? null;
  } finally {
    await c.end();
  }
}
