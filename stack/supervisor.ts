// Bring the stack up (what is not external), record where it is, and take it down again.
import path from 'node:path';
import type { Config } from '../config/index.ts';
import { withClient } from '../db/pool.ts';
import { isAlive, startEmbeddedPostgres, type RunningPostgres } from './postgres.ts';
import { assertPortsFree } from './ports.ts';
import { ensureTemporalCli } from './temporal-cli.ts';
import { ensureSearchAttributes, startTemporalDevServer, type RunningTemporal } from './temporal.ts';
import { readState, removeState, writeState, type StackState } from './endpoints.ts';

export type RunningStack = { state: StackState; stop(): Promise<void> };

export async function startStack(config: Config, log: (line: string) => void): Promise<RunningStack> {
  const previous = readState(config);
  if (previous && isAlive(previous.supervisorPid) && previous.supervisorPid !== process.pid) {
    throw new Error(`the stack is already running (supervisor pid ${previous.supervisorPid}); \`birthgate stack down\` first`);
  }
  const embeddedPg = !config.externalDatabaseUrl;
  const embeddedTemporal = !config.externalTemporalAddress;
  await assertPortsFree([
    ...(embeddedPg ? [{ port: config.pgPort, what: 'PostgreSQL', variable: 'BIRTHGATE_PG_PORT' }] : []),
    ...(embeddedTemporal
      ? [
          { port: config.temporalPort, what: 'Temporal frontend', variable: 'BIRTHGATE_TEMPORAL_PORT' },
          { port: config.uiPort, what: 'Temporal Web UI', variable: 'BIRTHGATE_UI_PORT' },
        ]
      : []),
  ]);
  const cli = embeddedTemporal ? await ensureTemporalCli(config, log) : undefined;

  let pgServer: RunningPostgres | undefined;
  let temporal: RunningTemporal | undefined;
  const stop = async () => {
    await temporal?.stop();
    await pgServer?.stop();
    temporal = undefined;
    pgServer = undefined;
    removeState(config);
  };
  try {
    const dataDir = path.join(config.home, 'pg');
    if (embeddedPg) {
      log(`starting PostgreSQL 16 (embedded) on 127.0.0.1:${config.pgPort} …`);
      pgServer = await startEmbeddedPostgres({
        dataDir,
        port: config.pgPort,
        password: config.pgPassword,
        database: config.dbName,
        logFile: path.join(config.home, 'logs', 'postgres.log'),
      });
    } else {
      await withClient(config.externalDatabaseUrl!, (c) => c.query('SELECT 1'));
    }
    const dbFile = path.join(config.home, 'temporal', 'dev.db');
    if (cli) {
      log(`starting the Temporal dev server on 127.0.0.1:${config.temporalPort} (UI ${config.uiPort}) …`);
      temporal = await startTemporalDevServer({
        cli,
        port: config.temporalPort,
        uiPort: config.uiPort,
        namespace: config.namespace,
        dbFile,
        logFile: path.join(config.home, 'logs', 'temporal.log'),
      });
    } else {
      await ensureSearchAttributes(config.externalTemporalAddress!, config.namespace);
    }
    const state: StackState = {
      supervisorPid: process.pid,
      startedAt: new Date().toISOString(),
      ready: true,
      databaseUrl: pgServer?.databaseUrl ?? config.externalDatabaseUrl!,
      temporalAddress: temporal?.address ?? config.externalTemporalAddress!,
      namespace: config.namespace,
      uiUrl: temporal?.uiUrl ?? config.temporalUiUrl,
      ...(pgServer ? { postgres: { pid: pgServer.pid, dataDir, port: config.pgPort } } : {}),
      ...(temporal ? { temporal: { pid: temporal.child.pid, port: config.temporalPort, uiPort: config.uiPort, dbFile } } : {}),
    };
    writeState(config, state);
    return { state, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
