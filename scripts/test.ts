// The test harness: start a real PostgreSQL 16 and a real Temporal dev server (or use DATABASE_URL /
// TEMPORAL_ADDRESS), run node's test runner over test/*.test.ts, then stop everything it started.
// Usage: npm test [-- test/some.test.ts …]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, projectRoot } from '../config/index.ts';
import { withDatabase } from '../db/pool.ts';
import { startEmbeddedPostgres, type RunningPostgres } from '../stack/postgres.ts';
import { freePort } from '../stack/ports.ts';
import { ensureTemporalCli } from '../stack/temporal-cli.ts';
import { ensureSearchAttributes, startTemporalDevServer, type RunningTemporal } from '../stack/temporal.ts';
import { ensureTestServer } from './test-server.ts';

const config = loadConfig();
const log = (line: string) => process.stderr.write(`[harness] ${line}\n`);

function testFiles(argv: string[]): string[] {
  if (argv.length > 0) return argv;
  const dir = path.join(projectRoot, 'test');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => path.join('test', f));
}

async function main(): Promise<number> {
  const files = testFiles(process.argv.slice(2));
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'birthgate-test-'));
  // The postgres OS user must be able to reach the data dir.
  fs.chmodSync(scratch, 0o755);
  let pgServer: RunningPostgres | undefined;
  let temporal: RunningTemporal | undefined;
  const cleanup = async () => {
    await temporal?.stop().catch(() => undefined);
    await pgServer?.stop().catch(() => undefined);
    fs.rmSync(scratch, { recursive: true, force: true });
  };
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const cli = await ensureTemporalCli(config, log);
    const timeSkipping = await ensureTestServer(config, log).catch((err: Error) => {
      log(`time-skipping test server unavailable (${err.message}); tests that need it will say so`);
      return undefined;
    });
    let adminUrl: string;
    if (config.externalDatabaseUrl) {
      adminUrl = withDatabase(config.externalDatabaseUrl, 'postgres');
      log(`using external PostgreSQL from DATABASE_URL`);
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
    let temporalAddress: string;
    if (config.externalTemporalAddress) {
      temporalAddress = config.externalTemporalAddress;
      await ensureSearchAttributes(temporalAddress, config.namespace);
      log(`using external Temporal at ${temporalAddress}`);
    } else {
      const port = await freePort();
      temporal = await startTemporalDevServer({
        cli,
        port,
        uiPort: await freePort(),
        namespace: config.namespace,
        dbFile: undefined,
        logFile: path.join(scratch, 'temporal.log'),
        headless: true,
      });
      temporalAddress = temporal.address;
      log(`Temporal dev server on ${temporalAddress}`);
    }
    const env = {
      ...process.env,
      NODE_ENV: 'test',
      BIRTHGATE_TEST_ADMIN_URL: adminUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: config.namespace,
      BIRTHGATE_TEST_TEMPORAL_CLI: cli,
      ...(timeSkipping ? { BIRTHGATE_TEST_TIME_SKIPPING_SERVER: timeSkipping } : {}),
      BIRTHGATE_TEST_SCRATCH: scratch,
    };
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=600000', ...files],
      { stdio: 'inherit', env, cwd: projectRoot },
    );
    return await new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  } finally {
    await cleanup();
  }
}

process.exitCode = await main().catch((err: Error) => {
  log(`failed: ${err.message}`);
  return 1;
});
