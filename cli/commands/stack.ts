// birthgate stack up [--detach] [--temporal dev|server] | down | status [--json]
// `--temporal server` (or BIRTHGATE_TEMPORAL_ENGINE=server) runs a real Temporal server on PostgreSQL
// persistence instead of the CLI's dev server (stack/temporal-server.ts); the dev server stays the default.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Connection } from '@temporalio/client';
import { projectRoot, type Config } from '../../config/index.ts';
import { withClient } from '../../db/pool.ts';
import { stackDown } from '../../stack/down.ts';
import { readState, stateFile } from '../../stack/endpoints.ts';
import { isAlive } from '../../stack/postgres.ts';
import { startStack } from '../../stack/supervisor.ts';
import { UsageError, type CliContext, type Command } from '../command.ts';
import { redact, untilSignal } from '../process.ts';

function args(argv: string[], options: Record<string, { type: 'boolean' | 'string' }>) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

type Engine = Config['temporalEngine'];

function engineOption(value: string | boolean | undefined, fallback: Engine): Engine {
  if (value === undefined) return fallback;
  if (value === 'dev' || value === 'server') return value;
  throw new UsageError(`--temporal must be dev or server, not ${String(value)}`);
}

async function serveForeground(ctx: CliContext, engine: Engine = ctx.config.temporalEngine): Promise<number> {
  const stack = await startStack({ ...ctx.config, temporalEngine: engine }, ctx.err);
  const s = stack.state;
  ctx.err(`stack up: database ${redact(s.databaseUrl)} · temporal ${s.temporalAddress} · UI ${s.uiUrl ?? '-'}`);
  const signal = await untilSignal();
  ctx.err(`${signal}: stopping the stack …`);
  await stack.stop();
  return 0;
}

async function upDetached(ctx: CliContext, engine: Engine): Promise<number> {
  const existing = readState(ctx.config);
  if (existing && isAlive(existing.supervisorPid)) {
    ctx.out(`the stack is already running (supervisor pid ${existing.supervisorPid})`);
    return 0;
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
  // The first start may install the Temporal CLI, or build the Temporal server (~5 min with a cold Go cache).
  const deadline = Date.now() + 900_000;
  while (Date.now() < deadline) {
    const state = readState(ctx.config);
    if (state?.ready && state.supervisorPid === child.pid) {
      child.unref();
      ctx.out(`stack up (supervisor pid ${child.pid}); \`birthgate stack status\` shows where`);
      return 0;
    }
    if (exit !== undefined) {
      const tail = fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
      ctx.err(`the stack did not start (exit ${exit}):\n${tail}`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  ctx.err(`the stack did not become ready in time; see ${logFile}`);
  return 1;
}

type Health = { ok: boolean; detail: string };

async function checkPostgres(url: string): Promise<Health> {
  try {
    const r = await withClient(url, (c) => c.query<{ v: string }>('SELECT current_setting($1) AS v', ['server_version']));
    return { ok: true, detail: `PostgreSQL ${r.rows[0]?.v}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

async function checkTemporal(address: string): Promise<Health> {
  try {
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
    usage: 'stack up [--detach] [--temporal dev|server]',
    async run(argv, ctx) {
      const v = args(argv, { detach: { type: 'boolean' }, temporal: { type: 'string' } });
      const engine = engineOption(v.temporal, ctx.config.temporalEngine);
      return v.detach ? upDetached(ctx, engine) : serveForeground(ctx, engine);
    },
  },
  {
    name: 'stack serve',
    summary: '(internal) the detached supervisor process',
    usage: 'stack serve',
    run: (_argv, ctx) => serveForeground(ctx),
  },
  {
    name: 'stack down',
    summary: 'stop the stack and everything it started',
    usage: 'stack down',
    async run(argv, ctx) {
      args(argv, {});
      const stopped = await stackDown(ctx.config);
      ctx.out(stopped.length ? `stack down: stopped ${stopped.join(', ')}` : 'stack down: nothing was running');
      return 0;
    },
  },
  {
    name: 'stack status',
    summary: 'where the stack is and whether it is healthy',
    usage: 'stack status [--json]',
    async run(argv, ctx) {
      const v = args(argv, { json: { type: 'boolean' } });
      const state = readState(ctx.config);
      let endpoints;
      try {
        endpoints = await ctx.endpoints();
      } catch (err) {
        if (v.json) ctx.out(JSON.stringify({ running: false, error: (err as Error).message, stateFile: stateFile(ctx.config) }));
        else ctx.err((err as Error).message);
        return 1;
      }
      const [pgHealth, temporalHealth] = await Promise.all([checkPostgres(endpoints.databaseUrl), checkTemporal(endpoints.temporalAddress)]);
      const healthy = pgHealth.ok && temporalHealth.ok;
      const report = {
        running: healthy,
        databaseUrl: endpoints.databaseUrl,
        workerDatabaseUrl: endpoints.workerDatabaseUrl,
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
      return healthy ? 0 : 1;
    },
  },
];
