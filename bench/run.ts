// npm run bench [-- NAME …]: every benchmark, or the named ones, on throwaway real servers.
// Figures are ratios against a baseline measured in the same run; the header says which machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, projectRoot } from '../config/index.ts';
import { withClient } from '../db/pool.ts';
import { startEphemeralStack } from '../stack/ephemeral.ts';
import { formatReport, makeFreshDatabase, type BenchContext, type BenchReport } from './context.ts';

type Bench = { name: string; module: string; run: (ctx: BenchContext) => Promise<BenchReport[]> };

async function load(name: string, module: string, exportName: string): Promise<Bench | undefined> {
  try {
    const m = (await import(module)) as Record<string, unknown>;
    const run = m[exportName];
    return typeof run === 'function' ? { name, module, run: run as Bench['run'] } : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
}

const config = loadConfig();
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const wanted = process.argv.slice(2);
const all = (
  await Promise.all([
    load('world', './world-load.ts', 'benchWorldLoad'),
    load('packet', './packet.ts', 'benchPacket'),
    load('admission', './admission.ts', 'benchAdmission'),
    load('handoff', './handoff.ts', 'benchHandoff'),
    load('schedules', './schedules.ts', 'benchSchedules'),
  ])
).filter((b): b is Bench => b !== undefined);
const selected = wanted.length ? all.filter((b) => wanted.includes(b.name)) : all;

const stack = await startEphemeralStack(config, log);
try {
  const pgVersion = await withClient(stack.adminUrl, (c) => c.query<{ v: string }>("SELECT current_setting('server_version') AS v"));
  const header = [
    `# birthgate benchmarks — ${new Date().toISOString()}`,
    `machine: ${os.cpus()[0]?.model ?? 'unknown cpu'} × ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}`,
    `node ${process.version}, PostgreSQL ${pgVersion.rows[0]?.v}, Temporal dev server (CLI ${path.basename(stack.temporalCli)})`,
  ].join('\n');
  console.log(header);
  const ctx: BenchContext = {
    adminUrl: stack.adminUrl,
    temporalAddress: stack.temporalAddress,
    namespace: config.namespace,
    log,
    freshDatabase: makeFreshDatabase(stack.adminUrl),
  };
  const sections = [header];
  for (const bench of selected) {
    log(`running ${bench.name} …`);
    for (const report of await bench.run(ctx)) {
      const text = formatReport(report);
      console.log(`\n${text}`);
      sections.push(text);
    }
  }
  const out = path.join(projectRoot, 'reports', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${sections.join('\n\n')}\n`);
  log(`written ${path.relative(projectRoot, out)}`);
} finally {
  await stack.stop();
}
