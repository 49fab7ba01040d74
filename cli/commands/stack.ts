// birthgate stack up [--detach] [--temporal dev|server] | down | status [--json]
// `--temporal server` (or BIRTHGATE_TEMPORAL_ENGINE=server) runs a real Temporal server on PostgreSQL
// persistence instead of the CLI's dev server (stack/temporal-server.ts); the dev server stays the default.
// The supervisor, the SDK and the driver load when a verb runs (cli/main.ts: --help answers at once).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot, type Config } from '../../config/index.ts';
import { readState, stateFile } from '../../stack/endpoints.ts';
import { parseFlags, str } from '../args.ts';
import { CliError, EXIT, UsageError, type CliContext, type Command } from '../command.ts';
import { explain, shown } from '../errors.ts';
import { redact, untilSignal } from '../process.ts';

type Engine = Config['temporalEngine'];

function engineOption(value: string | undefined, fallback: Engine): Engine {
  if (value === undefined) return fallback;
  if (value === 'dev' || value === 'server') return value;
  throw new UsageError(`--temporal must be dev or server, not ${shown(value)}`);
}

const isAlive = async (pid: number) => (await import('../../stack/postgres.ts')).isAlive(pid);

async function serveForeground(ctx: CliContext, json: boolean, engine: Engine = ctx.config.temporalEngine): Promise<number> {
  const { startStack } = await import('../../stack/supervisor.ts');
  const stack = await startStack({ ...ctx.config, temporalEngine: engine }, ctx.err);
  const s = stack.state;
  ctx.err(`stack up: database ${redact(s.databaseUrl)} · temporal ${s.temporalAddress} · UI ${s.uiUrl ?? '-'} (Ctrl-C stops it)`);
  // The one JSON value once the stack is ready: a script reads where it is, then leaves it serving.
  if (json) ctx.out(JSON.stringify({ running: true, supervisorPid: process.pid, databaseUrl: s.databaseUrl, temporalAddress: s.temporalAddress, namespace: s.namespace, uiUrl: s.uiUrl ?? null, engine }, null, 2));
  const signal = await untilSignal();
  ctx.err(`${signal}: stopping the stack …`);
  await stack.stop();
  return EXIT.done;
}

async function upDetached(ctx: CliContext, json: boolean, engine: Engine): Promise<number> {
  const existing = readState(ctx.config);
  if (existing && (await isAlive(existing.supervisorPid))) {
    if (json) ctx.out(JSON.stringify({ running: true, started: false, supervisorPid: existing.supervisorPid, stateFile: stateFile(ctx.config) }, null, 2));
    else ctx.out(`the stack is already running (supervisor pid ${existing.supervisorPid})`);
    return EXIT.done;
  }
  fs.mkdirSync(path.join(ctx.config.home, 'logs'), { recursive: true });
  const logFile = path.join(ctx.config.home, 'logs', 'stack.log');
  const log = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'birthgate.mjs'), 'stack', 'serve'], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, BIRTHGATE_TEMPORAL_ENGINE: engine },
  });
  fs.closeSync(log);
  let exit: number | null | undefined;
  child.once('exit', (code) => (exit = code));
  ctx.err(`starting the stack (supervisor pid ${child.pid}, log ${logFile}) …`);
  // The first start may install the Temporal CLI, or build the Temporal server (~5 min with a cold Go cache).
  const started = Date.now();
  const deadline = started + 900_000;
  let told = started;
  while (Date.now() < deadline) {
    const state = readState(ctx.config);
    if (state?.ready && state.supervisorPid === child.pid) {
      child.unref();
      if (json) ctx.out(JSON.stringify({ running: true, started: true, supervisorPid: child.pid, stateFile: stateFile(ctx.config), logFile }, null, 2));
      else ctx.out(`stack up (supervisor pid ${child.pid}); \`birthgate stack status\` shows where`);
      return EXIT.done;
    }
    if (exit !== undefined) {
      const tail = fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
      ctx.err(tail);
      throw new CliError(`the stack did not start (exit ${exit}); the last lines of ${logFile} are above`, EXIT.failed, {
        code: 'STACK_FAILED',
        next: 'fix what the log says (a port in use: BIRTHGATE_PG_PORT / BIRTHGATE_TEMPORAL_PORT / BIRTHGATE_UI_PORT), then run `birthgate stack up --detach` again',
      });
    }
    if (Date.now() - told >= 15_000) {
      told = Date.now();
      ctx.err(`  still starting after ${Math.round((told - started) / 1000)} s (a first start installs the Temporal CLI) …`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new CliError(`the stack did not become ready in ${(deadline - started) / 60_000} min`, EXIT.failed, { code: 'STACK_FAILED', next: `see ${logFile}; \`birthgate stack down\` stops what started` });
}

type Health = { ok: boolean; detail: string };

async function checkPostgres(url: string): Promise<Health> {
  try {
    const { withClient } = await import('../../db/pool.ts');
    const r = await withClient(url, (c) => c.query<{ v: string }>('SELECT current_setting($1) AS v', ['server_version']));
    return { ok: true, detail: `PostgreSQL ${r.rows[0]?.v}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

async function checkTemporal(address: string): Promise<Health> {
  try {
    const { Connection } = await import('@temporalio/client');
    const connection = await Connection.connect({ address, connectTimeout: 3_000 });
    try {
      const info = await connection.workflowService.getSystemInfo({});
      return { ok: true, detail: `Temporal server ${info.serverVersion}` };
    } finally {
      await connection.close();
    }
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

export const commands: Command[] = [
  {
    name: 'stack up',
    summary: 'start embedded PostgreSQL 16 and Temporal (the dev server, or --temporal server) (foreground, or --detach)',
    usage: 'stack up [--detach] [--temporal dev|server] [--json]',
    options: [
      ['--detach', 'start it in the background and return once it is ready (else it serves until Ctrl-C)'],
      ['--temporal dev|server', 'the Temporal dev server (default), or a real Temporal server on PostgreSQL'],
    ],
    examples: ['birthgate stack up --detach', 'birthgate stack up --temporal server --detach --json'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, { detach: { type: 'boolean' }, temporal: { type: 'string' } });
      const engine = engineOption(str(v.temporal), ctx.config.temporalEngine);
      return v.detach ? upDetached(ctx, v.json === true, engine) : serveForeground(ctx, v.json === true, engine);
    },
  },
  {
    name: 'stack serve',
    summary: '(internal) the detached supervisor process',
    usage: 'stack serve',
    examples: ['birthgate stack serve   # what `birthgate stack up --detach` starts in the background'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, {});
      return serveForeground(ctx, v.json === true);
    },
  },
  {
    name: 'stack down',
    summary: 'stop the stack and everything it started',
    usage: 'stack down [--json]',
    examples: ['birthgate stack down'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, {});
      const { stackDown } = await import('../../stack/down.ts');
      const stopped = await stackDown(ctx.config);
      if (v.json) ctx.out(JSON.stringify({ stopped }, null, 2));
      else ctx.out(stopped.length ? `stack down: stopped ${stopped.join(', ')}` : 'stack down: nothing was running');
      return EXIT.done;
    },
  },
  {
    name: 'stack status',
    summary: 'where the stack is and whether it is healthy (exit 1 when it is not running or a part is down)',
    usage: 'stack status [--json] [--show-secrets]',
    options: [['--show-secrets', 'print the connection URLs with their passwords (for a script that connects with them); else they are masked as ***']],
    examples: ['birthgate stack status', 'birthgate stack status --json', 'birthgate stack status --json --show-secrets'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, { 'show-secrets': { type: 'boolean' } });
      // Passwords stay out of output that ends up in logs and CI transcripts unless asked for by name.
      const shown = (url: string) => (v['show-secrets'] ? url : redact(url));
      const state = readState(ctx.config);
      let endpoints;
      try {
        endpoints = await ctx.endpoints();
      } catch (err) {
        const e = explain(err);
        // Not running is this verb's answer, not a crash: the report says so, with the same error object as any failure.
        if (v.json) ctx.out(JSON.stringify({ running: false, stateFile: stateFile(ctx.config), error: { code: e.code, message: e.message, next: e.next ?? null } }, null, 2));
        ctx.err(`birthgate stack status: ${e.message}`);
        if (e.next) ctx.err(`next: ${e.next}`);
        return EXIT.failed;
      }
      const [pgHealth, temporalHealth] = await Promise.all([checkPostgres(endpoints.databaseUrl), checkTemporal(endpoints.temporalAddress)]);
      const healthy = pgHealth.ok && temporalHealth.ok;
      const report = {
        running: healthy,
        databaseUrl: shown(endpoints.databaseUrl),
        workerDatabaseUrl: shown(endpoints.workerDatabaseUrl),
        temporalAddress: endpoints.temporalAddress,
        namespace: endpoints.namespace,
        // Which Temporal: the dev server, a real server on PostgreSQL (`--temporal server`), or TEMPORAL_ADDRESS's.
        engine: ctx.config.externalTemporalAddress ? 'external' : (state?.engine ?? 'dev'),
        uiUrl: endpoints.uiUrl ?? null,
        supervisorPid: state?.supervisorPid ?? null,
        postgres: pgHealth,
        temporal: temporalHealth,
      };
      if (v.json) ctx.out(JSON.stringify(report, null, 2));
      else {
        ctx.out(`database   ${redact(report.databaseUrl)}  ${pgHealth.ok ? 'ok' : 'DOWN'} (${pgHealth.detail})`);
        ctx.out(`temporal   ${report.temporalAddress} namespace ${report.namespace} (${report.engine === 'server' ? 'Temporal server on PostgreSQL' : report.engine === 'dev' ? 'dev server' : 'external'})  ${temporalHealth.ok ? 'ok' : 'DOWN'} (${temporalHealth.detail})`);
        ctx.out(`web UI     ${report.uiUrl ?? '-'}`);
      }
      if (!healthy) ctx.err(`next: ${report.engine === 'external' ? 'check the servers at DATABASE_URL / TEMPORAL_ADDRESS' : '`birthgate stack down`, then `birthgate stack up --detach` (its log: BIRTHGATE_HOME/logs/stack.log)'}`);
      return healthy ? EXIT.done : EXIT.failed;
    },
  },
];
