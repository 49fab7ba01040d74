// Bring the stack up (what is not external), record where it is, and take it down again.
import path from 'node:path';
import type { Config } from '../config/index.ts';
import { withClient, withDatabase } from '../db/pool.ts';
import { isAlive, startEmbeddedPostgres, type RunningPostgres } from './postgres.ts';
import { assertPortsFree } from './ports.ts';
import { ensureTemporalCli } from './temporal-cli.ts';
import { ensureSearchAttributes, startTemporalDevServer, type RunningTemporal } from './temporal.ts';
import { startSdkDownloadedDevServer, type SdkDevServer } from './temporal-sdk-fallback.ts';
import { startTemporalServerOn, type RunningTemporalServer } from './temporal-server.ts';
import { readState, removeState, writeState, type StackState } from './endpoints.ts';

export type RunningStack = { state: StackState; stop(): Promise<void> };

export async function startStack(config: Config, log: (line: string) => void): Promise<RunningStack> {
  const previous = readState(config);
  if (previous && isAlive(previous.supervisorPid) && previous.supervisorPid !== process.pid) {
    throw new Error(`the stack is already running (supervisor pid ${previous.supervisorPid}); \`birthgate stack down\` first`);
  }
  const embeddedPg = !config.externalDatabaseUrl;
  const embeddedTemporal = !config.externalTemporalAddress;
  const realServer = embeddedTemporal && config.temporalEngine === 'server'; // no Web UI, no CLI needed
  await assertPortsFree([
    ...(embeddedPg ? [{ port: config.pgPort, what: 'PostgreSQL', variable: 'BIRTHGATE_PG_PORT' }] : []),
    ...(embeddedTemporal
      ? [
          { port: config.temporalPort, what: 'Temporal frontend', variable: 'BIRTHGATE_TEMPORAL_PORT' },
          ...(realServer ? [] : [{ port: config.uiPort, what: 'Temporal Web UI', variable: 'BIRTHGATE_UI_PORT' }]),
        ]
      : []),
  ]);
  let cli: string | undefined;
  let cliError: Error | undefined;
  if (embeddedTemporal && !realServer) {
    try {
      cli = await ensureTemporalCli(config, log);
    } catch (err) {
      // An explicit TEMPORAL_CLI that does not work is a configuration error, not a reason to download.
      if (config.temporalCli) throw err;
      cliError = err as Error; // the SDK's cached download is tried below, as the last resort
    }
  }

  let pgServer: RunningPostgres | undefined;
  let temporal: RunningTemporal | undefined;
  let sdkTemporal: SdkDevServer | undefined;
  let server: RunningTemporalServer | undefined;
  const stop = async () => {
    await temporal?.stop();
    await server?.stop();
    server = undefined;
    await sdkTemporal?.stop();
    sdkTemporal = undefined;
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
    if (realServer) {
      log(`starting a Temporal server on PostgreSQL persistence on 127.0.0.1:${config.temporalPort} …`);
      server = await startTemporalServerOn({
        adminUrl: pgServer?.adminUrl ?? withDatabase(config.externalDatabaseUrl!, 'postgres'),
        home: config.home,
        password: config.temporalDbPassword,
        namespace: config.namespace,
        logFile: path.join(config.home, 'logs', 'temporal-server.log'),
        frontendPort: config.temporalPort,
        estateDatabase: pgServer ? config.dbName : new URL(config.externalDatabaseUrl!).pathname.slice(1),
        log,
      });
    } else if (cli) {
      log(`starting the Temporal dev server on 127.0.0.1:${config.temporalPort} (UI ${config.uiPort}) …`);
      temporal = await startTemporalDevServer({
        cli,
        port: config.temporalPort,
        uiPort: config.uiPort,
        namespace: config.namespace,
        dbFile,
        logFile: path.join(config.home, 'logs', 'temporal.log'),
      });
    } else if (embeddedTemporal) {
      log(`${cliError?.message}; trying the Temporal SDK's cached download of the CLI as the last resort …`);
      try {
        sdkTemporal = await startSdkDownloadedDevServer({ port: config.temporalPort, uiPort: config.uiPort, namespace: config.namespace, dbFile });
      } catch (err) {
        throw new Error(`no Temporal CLI: ${cliError?.message}; the SDK download failed too: ${(err as Error).message}`);
      }
    } else {
      await ensureSearchAttributes(config.externalTemporalAddress!, config.namespace);
    }
    const state: StackState = {
      supervisorPid: process.pid,
      startedAt: new Date().toISOString(),
      ready: true,
      databaseUrl: pgServer?.databaseUrl ?? config.externalDatabaseUrl!,
      temporalAddress: temporal?.address ?? sdkTemporal?.address ?? server?.address ?? config.externalTemporalAddress!,
      namespace: config.namespace,
      uiUrl: temporal?.uiUrl ?? sdkTemporal?.uiUrl ?? config.temporalUiUrl,
      ...(pgServer ? { postgres: { pid: pgServer.pid, dataDir, port: config.pgPort } } : {}),
      ...(temporal ? { temporal: { pid: temporal.child.pid, port: config.temporalPort, uiPort: config.uiPort, dbFile } } : {}),
      ...(server ? { temporal: { pid: server.child.pid, port: config.temporalPort } } : {}),
      engine: embeddedTemporal ? config.temporalEngine : 'external',
    };
    writeState(config, state);
    return { state, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
