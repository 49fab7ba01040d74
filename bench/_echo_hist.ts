import path from 'node:path';
import { spawn } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { freePort, waitFor } from '../stack/ports.ts';
import { echoActivities } from './echo-activities.ts';
Runtime.install({ logger: new DefaultLogger('WARN') });
const port = await freePort();
const child = spawn('/work/main/.birthgate/tools/temporal/bin/temporal', ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--headless', '--log-level', 'error', ...process.argv.slice(2)], { stdio: 'ignore' });
await waitFor('server', 30000, async () => { const c = await Connection.connect({ address: `127.0.0.1:${port}` }); await c.workflowService.getSystemInfo({}); await c.close(); return true; });
const nc = await NativeConnection.connect({ address: `127.0.0.1:${port}` });
const worker = await Worker.create({ connection: nc, taskQueue: 'echo', workflowsPath: path.resolve('bench/echo-workflow.ts'), activities: echoActivities });
const run = worker.run();
const client = new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) });
for (let k = 0; k < 3; k++) {
  const s0 = performance.now();
  const h = await client.workflow.start('echoAdmission', { args: [4], taskQueue: 'echo', workflowId: `h-${k}-${Date.now()}` });
  const s1 = performance.now();
  await h.result();
  console.log(`start ${(s1 - s0).toFixed(0)} ms, start→result ${(performance.now() - s0).toFixed(0)} ms`);
  const hist = await h.fetchHistory();
  const t0 = Number(hist.events![0]!.eventTime!.seconds) * 1000 + hist.events![0]!.eventTime!.nanos! / 1e6;
  console.log(hist.events!.map((e) => `${e.eventType}:${(Number(e.eventTime!.seconds) * 1000 + e.eventTime!.nanos! / 1e6 - t0).toFixed(0)}`).join(' '));
}
worker.shutdown(); await run; child.kill('SIGTERM'); process.exit(0);
