// npm run bench [-- NAME …] [-- --engine=dev|server|both]: every benchmark, or the named ones, on
// throwaway real servers. Figures are ratios against a baseline measured in the same run; the header
// says which machine. --engine (or BIRTHGATE_BENCH_ENGINE) picks the Temporal the admission bench runs
// on: the dev server (default), a real server on PostgreSQL (stack/temporal-server.ts), or both one
// after the other with a comparison table; scale-out always runs on the real server.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, projectRoot } from '../config/index.ts';
import { withClient } from '../db/pool.ts';
import { startEphemeralStack } from '../stack/ephemeral.ts';
import { formatReport, makeFreshDatabase, type BenchContext, type BenchReport } from './context.ts';
import { startTemporalServerOn, throwawayDatabases, type RunningTemporalServer } from '../stack/temporal-server.ts';
import { compareEngines } from './scale-out.ts';
import { installWorkerRuntime } from '../observability/runtime.ts';

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
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('--engine='));
const engineChoice = process.argv.find((a) => a.startsWith('--engine='))?.slice('--engine='.length) ?? process.env.BIRTHGATE_BENCH_ENGINE ?? 'dev';
if (!['dev', 'server', 'both'].includes(engineChoice)) throw new Error(`--engine must be dev, server or both, not ${engineChoice}`);
/** The benchmarks that run on the chosen engine(s); the others on the stack's own Temporal. */
const ENGINE_BENCHES = new Set(['admission']);
const all = (
  await Promise.all([
    load('world', './world-load.ts', 'benchWorldLoad'),
    load('packet', './packet.ts', 'benchPacket'),
    load('admission', './admission.ts', 'benchAdmission'),
    load('handoff', './handoff.ts', 'benchHandoff'),
    load('schedules', './schedules.ts', 'benchSchedules'),
    load('scale-out', './scale-out.ts', 'benchScaleOut'),
  ])
).filter((b): b is Bench => b !== undefined);
const selected = wanted.length ? all.filter((b) => wanted.includes(b.name)) : all;

let server: RunningTemporalServer | undefined;
const stack = await startEphemeralStack(config, log);
// A benchmark stopped by a signal still stops the servers it started (they would outlive it otherwise).
const onSignal = (signal: NodeJS.Signals) => {
  log(`${signal}: stopping the servers this run started …`);
  void Promise.allSettled([server?.stop(), stack.stop()]).then(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
// The workers in this process log as a production worker does (JSON lines at INFO, the default), into
// a file beside the run's servers: the cost is measured, and the tables stay readable.
const workerLog = fs.createWriteStream(path.join(stack.scratch, 'bench-worker.log'));
installWorkerRuntime({ format: 'json', level: 'INFO', write: (line) => workerLog.write(`${line}\n`), metrics: null });
/** The real server: the stack's own under BIRTHGATE_TEMPORAL_ENGINE=server, else one started beside it on its cluster. */
const realServerAddress = async (): Promise<string> => {
  if (stack.engine === 'server') return stack.temporalAddress;
  server ??= await startTemporalServerOn({
    adminUrl: stack.adminUrl, home: config.home, password: config.temporalDbPassword, namespace: config.namespace,
    logFile: path.join(stack.scratch, 'temporal-server.log'), databases: throwawayDatabases(), dropOnStop: true, log,
  });
  return server.address;
};
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
  const print = (report: BenchReport) => {
    const text = formatReport(report);
    console.log(`\n${text}`);
    sections.push(text);
  };
  for (const bench of selected) {
    const engines = bench.name === 'scale-out' ? ['server'] : !ENGINE_BENCHES.has(bench.name) ? [stack.engine]
      : engineChoice === 'both' ? ['dev', 'server'] : [engineChoice];
    const byEngine: Record<string, BenchReport[]> = {};
    for (const engine of engines) {
      const onServer = engine === 'server' && stack.engine !== 'server';
      const c = { ...ctx, engine, ...(onServer ? { temporalAddress: await realServerAddress() } : {}) };
      log(`running ${bench.name}${engines.length > 1 || onServer ? ` on the ${engine === 'server' ? 'real Temporal server' : 'dev server'}` : ''} …`);
      byEngine[engine] = await bench.run(c);
      for (const report of byEngine[engine]!) print(engines.length > 1 ? { ...report, title: `${report.title} — ${engine === 'server' ? `Temporal server ${server?.version ?? ''} on PostgreSQL` : 'dev server'}` } : report);
    }
    if (byEngine.dev && byEngine.server) print(compareEngines(byEngine.dev, byEngine.server));
  }
  const out = path.join(projectRoot, 'reports', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${sections.join('\n\n')}\n`);
  log(`written ${path.relative(projectRoot, out)}`);
} finally {
  await server?.stop();
  await stack.stop();
}
