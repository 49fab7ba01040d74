// Throwaway probe: echo workflow latency/throughput on a private dev server with tunable worker options.
// node --import tsx bench/_echo_probe.ts [extra dev-server flags]
// env: SLOTS, WOPTS (JSON merged into Worker.create options), LEVELS (e.g. "1,10,50"), N1, N, BREAKDOWN=1
import path from 'node:path';
import { spawn } from 'node:child_process';
import os from 'node:os';
import fs from 'node:fs';
const procCpu = (pid: number) => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { freePort, waitFor } from '../stack/ports.ts';
import { echoActivities } from './echo-activities.ts';

Runtime.install({ logger: new DefaultLogger('WARN') });
import { devServerDynamicConfigArgs } from '../stack/temporal.ts';
const extra = [...process.argv.slice(2), ...(process.env.FIX ? devServerDynamicConfigArgs() : [])];
const port = await freePort();
const child = spawn('/work/main/.birthgate/tools/temporal/bin/temporal', ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--headless', '--log-level', process.env.SLOG ?? 'error', ...extra], { stdio: process.env.SLOG ? ['ignore', 'inherit', 'inherit'] : 'ignore' });
await waitFor('server', 30000, async () => { const c = await Connection.connect({ address: `127.0.0.1:${port}` }); await c.workflowService.getSystemInfo({}); await c.close(); return true; });
const nc = await NativeConnection.connect({ address: `127.0.0.1:${port}` });
const wopts = JSON.parse(process.env.WOPTS ?? '{}');
const worker = await Worker.create({ connection: nc, taskQueue: 'echo', workflowsPath: path.resolve('bench/echo-workflow.ts'), activities: echoActivities, maxConcurrentActivityTaskExecutions: Number(process.env.SLOTS ?? 20), ...wopts });
const run = worker.run();
const client = new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) });
const ms = (t: any) => Number(t.seconds) * 1000 + (t.nanos ?? 0) / 1e6;
const label = `${process.env.TAG ?? ''} ${extra.join(' ')} ${process.env.WOPTS ?? ''} SLOTS=${process.env.SLOTS ?? 20}`.trim();
console.error(`pid ${child.pid}`); console.log(`# ${label} load=${os.loadavg().map((x) => x.toFixed(2)).join(',')}`);
await client.workflow.execute('echoAdmission', { args: [4], taskQueue: 'echo', workflowId: `warm-${Date.now()}` });
for (const conc of (process.env.LEVELS ?? '1,10,50').split(',').map(Number)) {
  const n = conc === 1 ? Number(process.env.N1 ?? 30) : Number(process.env.N ?? 200);
  let next = 0; const lat: number[] = []; const ids: string[] = [];
  const t0 = performance.now(); const sc0 = procCpu(child.pid!); const nc0 = process.cpuUsage();
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < n) { const i = next++; const s = performance.now(); const id = `e-${conc}-${i}-${Date.now()}`; ids.push(id); await client.workflow.execute('echoAdmission', { args: [4], taskQueue: 'echo', workflowId: id }); lat.push(performance.now() - s); }
  }));
  const secs = (performance.now() - t0) / 1000; const sorted = [...lat].sort((a, b) => a - b);
  console.log(`conc=${conc} ${(n / secs).toFixed(1)}/s p50=${sorted[Math.floor(sorted.length * 0.5)]!.toFixed(0)} p99=${sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!.toFixed(0)} load=${os.loadavg()[0]!.toFixed(2)} cpu/wf server=${((procCpu(child.pid!) - sc0) / n).toFixed(1)}ms node=${((process.cpuUsage(nc0).user + process.cpuUsage(nc0).system) / 1000 / n).toFixed(1)}ms`);
  if (process.env.SEQ && conc === 1) console.log('  seq', lat.map((x) => x.toFixed(0)).join(' '));
  if (process.env.BREAKDOWN) {
    // Per-gap sums from history: scheduled→started (queue wait) and started→completed (worker) for WFT and activity.
    const agg: Record<string, number[]> = {};
    for (const id of ids.slice(0, 20)) {
      const h = await client.workflow.getHandle(id).fetchHistory();
      const ev = h.events!; const t = (i: number) => ms(ev[i]!.eventTime);
      const add = (k: string, v: number) => (agg[k] ??= []).push(v);
      add('total', t(ev.length - 1) - t(0));
      for (let i = 1; i < ev.length; i++) add(`${ev[i - 1]!.eventType}->${ev[i]!.eventType}`, t(i) - t(i - 1));
    }
    for (const [k, v] of Object.entries(agg)) { v.sort((a, b) => a - b); console.log(`  ${k.replace(/EVENT_TYPE_/g, '')}: n=${v.length} p50=${v[Math.floor(v.length / 2)]!.toFixed(1)} max=${v[v.length - 1]!.toFixed(1)}`); }
  }
}
worker.shutdown(); await run; child.kill('SIGTERM'); process.exit(0);
