// Throwaway servers for the test harness and the benchmarks: a real PostgreSQL 16 and a real
// Temporal dev server on free ports under a scratch folder (or the external ones from the config).
// With engine 'server' (opts.engine, else BIRTHGATE_TEMPORAL_ENGINE) the Temporal is a real server on
// PostgreSQL persistence instead (stack/temporal-server.ts): its databases in the scratch cluster, or
// throwaway ones in DATABASE_URL's server that go with the stack.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/index.ts';
import { withDatabase } from '../db/pool.ts';
import { startEmbeddedPostgres, type RunningPostgres } from './postgres.ts';
import { freePort } from './ports.ts';
import { ensureTemporalCli } from './temporal-cli.ts';
import { ensureSearchAttributes, startTemporalDevServer, type RunningTemporal } from './temporal.ts';
import { startTemporalServerOn, throwawayDatabases, type RunningTemporalServer } from './temporal-server.ts';

export type EphemeralStack = {
  scratch: string;
  /** Superuser URL of the `postgres` database. */
  adminUrl: string;
  temporalAddress: string;
  temporalCli: string;
  /** Which Temporal runs: the CLI's dev server, a real server, or an external one (TEMPORAL_ADDRESS). */
  engine: 'dev' | 'server' | 'external' | 'none';
  /** The real server, when engine is 'server'. */
  temporalServer?: RunningTemporalServer;
  stop(): Promise<void>;
};

export async function startEphemeralStack(
  config: Config,
  log: (line: string) => void,
  opts: { temporal?: boolean; postgresFlags?: string[]; engine?: 'dev' | 'server' } = {},
): Promise<EphemeralStack> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'birthgate-'));
  fs.chmodSync(scratch, 0o755); // the postgres OS user must reach its data dir
  let pgServer: RunningPostgres | undefined;
  let temporal: RunningTemporal | undefined;
  let temporalServer: RunningTemporalServer | undefined;
  const engine = opts.engine ?? config.temporalEngine;
  const stop = async () => {
    await temporal?.stop().catch(() => undefined);
    await temporalServer?.stop().catch(() => undefined);
    await pgServer?.stop().catch(() => undefined);
    fs.rmSync(scratch, { recursive: true, force: true });
  };
  try {
    const temporalCli = await ensureTemporalCli(config, log);
    let adminUrl: string;
    if (config.externalDatabaseUrl) {
      adminUrl = withDatabase(config.externalDatabaseUrl, 'postgres');
      log('using external PostgreSQL from DATABASE_URL');
    } else {
      const port = await freePort();
      pgServer = await startEmbeddedPostgres({
        dataDir: path.join(scratch, 'pg'),
        port,
        password: 'birthgate-test',
        database: 'postgres',
        logFile: path.join(scratch, 'postgres.log'),
      });
      adminUrl = pgServer.adminUrl;
      log(`PostgreSQL 16 (embedded) on 127.0.0.1:${port}`);
    }
    let temporalAddress = '';
    let running: EphemeralStack['engine'] = 'none';
    if (config.externalTemporalAddress) {
      running = 'external';
      temporalAddress = config.externalTemporalAddress;
      await ensureSearchAttributes(temporalAddress, config.namespace);
      log(`using external Temporal at ${temporalAddress}`);
    } else if (opts.temporal !== false && engine === 'server') {
      temporalServer = await startTemporalServerOn({
        adminUrl,
        home: config.home, // the build is cached there between runs
        password: config.temporalDbPassword,
        namespace: config.namespace,
        logFile: path.join(scratch, 'temporal-server.log'),
        ...(pgServer ? {} : { databases: throwawayDatabases(), dropOnStop: true }),
        estateDatabase: config.externalDatabaseUrl ? new URL(config.externalDatabaseUrl).pathname.slice(1) : undefined,
        log,
      });
      temporalAddress = temporalServer.address;
      running = 'server';
      log(`Temporal server ${temporalServer.version} (PostgreSQL persistence) on ${temporalAddress}`);
    } else if (opts.temporal !== false) {
      running = 'dev';
      temporal = await startTemporalDevServer({
        cli: temporalCli,
        port: await freePort(),
        uiPort: await freePort(),
        namespace: config.namespace,
        dbFile: undefined,
        logFile: path.join(scratch, 'temporal.log'),
        headless: true,
      });
      temporalAddress = temporal.address;
      log(`Temporal dev server on ${temporalAddress}`);
    }
    return { scratch, adminUrl, temporalAddress, temporalCli, engine: running, ...(temporalServer ? { temporalServer } : {}), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
