// The chaos run's own embedded stack, never a shared one (the harness restarts its servers): a
// PostgreSQL 16 cluster in a scratch folder (restarted with a fast shutdown: SIGINT to the postmaster),
// a Temporal engine (chaos/engine.ts), and the admission world built once as a template database —
// baseline, the packet through its last step, the worker role, an operator login and the chaos
// stop-condition dim, then a rebaseline so the drift watch starts clean. Each run (the no-fault run and
// the fault run of one seed) gets a copy of it (CREATE DATABASE … TEMPLATE), so both start from the same
// catalog. The production workflow bundle is built once into the scratch BIRTHGATE_HOME the worker
// processes run it from.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../config/index.ts';
import { createPool, withClient, withDatabase } from '../db/pool.ts';
import { freePort } from '../stack/ports.ts';
import { startEmbeddedPostgres, type RunningPostgres } from '../stack/postgres.ts';
import { ensureTemporalCli } from '../stack/temporal-cli.ts';
import { workerUrlFrom } from '../stack/endpoints.ts';
import { writeProductionBundle } from '../workers/bundle.ts';
import { prepareAdmissionWorld, WORKER_PASSWORD } from '../test/support/admission-world.ts';
import { installOperatorLogin, operatorUrl } from '../test/support/packet-world.ts';
import { type Engine, type EngineKind, startDevEngine, startServerEngine } from './engine.ts';
import { sleep } from './transient.ts';

const TEMPLATE = 'bg_chaos_template';
const STOP_CONDITION_SQL = fs.readFileSync(fileURLToPath(new URL('./stop-condition.sql', import.meta.url)), 'utf8');

export type RunDatabase = { name: string; url: string; workerUrl: string; operatorUrl: string };

export type ChaosStack = {
  scratch: string;
  /** BIRTHGATE_HOME of the worker processes (the prebuilt production bundle). */
  home: string;
  namespace: string;
  adminUrl: string;
  engine: Engine;
  /** Fast shutdown (SIGINT to the postmaster), `downMs` down, start again on the same data and port. */
  restartPostgres(downMs: number): Promise<void>;
  newRunDatabase(label: string): Promise<RunDatabase>;
  /** Stop everything started; keep the scratch folder (its logs) when asked. */
  stop(opts?: { keepScratch?: boolean }): Promise<void>;
  timings: Record<string, number>;
};

export async function startChaosStack(o: { engine: EngineKind; temporalCli?: string; log: (line: string) => void }): Promise<ChaosStack> {
  const config = loadConfig();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'birthgate-chaos-'));
  fs.chmodSync(scratch, 0o755); // the postgres OS user must reach its data dir
  const home = path.join(scratch, 'home');
  const timings: Record<string, number> = {};
  const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      timings[what] = Date.now() - t;
    }
  };
  const password = randomBytes(12).toString('hex');
  const pgOpts = {
    dataDir: path.join(scratch, 'pg'), port: await freePort(), password, database: 'postgres', logFile: path.join(scratch, 'logs', 'postgres.log'),
  };
  let postgres: RunningPostgres | undefined;
  let engine: Engine | undefined;
  const stop = async (opts: { keepScratch?: boolean } = {}) => {
    await engine?.stop().catch(() => undefined);
    engine = undefined;
    await postgres?.stop().catch(() => undefined);
    postgres = undefined;
    if (!opts.keepScratch) fs.rmSync(scratch, { recursive: true, force: true });
  };
  try {
    // The bundle (webpack, CPU-bound) while PostgreSQL starts and the world is built (mostly waiting on it).
    const bundled = timed('bundle', () => writeProductionBundle(home));
    bundled.catch(() => undefined); // awaited below; a failure must not go unheard meanwhile
    postgres = await timed('postgres', () => startEmbeddedPostgres(pgOpts));
    const adminUrl = postgres.adminUrl;
    o.log(`PostgreSQL 16 (embedded) on 127.0.0.1:${pgOpts.port}, data in ${pgOpts.dataDir}`);
    await timed('world', () => prepareTemplate(adminUrl));
    engine = await timed('temporal', async () => o.engine === 'dev'
      ? startDevEngine({ cli: o.temporalCli ?? (await ensureTemporalCli(config, o.log)), scratch, namespace: config.namespace })
      : startServerEngine({ home: config.home, scratch, namespace: config.namespace, adminUrl, password: randomBytes(12).toString('hex'), log: o.log }));
    o.log(`${engine.describe} on ${engine.address}`);
    await bundled;
    const stack: ChaosStack = {
      scratch, home, namespace: config.namespace, adminUrl, engine, timings, stop,
      async restartPostgres(downMs) {
        const was = postgres;
        postgres = undefined;
        await was?.stop();
        await sleep(downMs);
        postgres = await startEmbeddedPostgres(pgOpts);
      },
      async newRunDatabase(label) {
        const name = `bg_chaos_${label}_${randomBytes(3).toString('hex')}`;
        // The template's last session may still be on its way out (pg-pool's end() does not wait for it): 55006, try again.
        for (let attempt = 1; ; attempt++) {
          try {
            await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(TEMPLATE)}`));
            break;
          } catch (err) {
            if ((err as { code?: string }).code !== '55006' || attempt >= 50) throw err;
            await sleep(100);
          }
        }
        const url = withDatabase(adminUrl, name);
        return { name, url, workerUrl: workerUrlFrom(url, WORKER_PASSWORD), operatorUrl: operatorUrl(url) };
      },
    };
    return stack;
  } catch (err) {
    await stop({ keepScratch: true });
    throw new Error(`the chaos stack did not start (logs kept in ${scratch}): ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The admission world once, as a template: what test/support/admission-world.ts builds for the admission
 * tests, an operator login for break-glass, the chaos stop-condition dim, and a logged rebaseline that
 * accepts the dim (so gate_drift starts at zero and the drift watch has nothing to report).
 */
async function prepareTemplate(adminUrl: string): Promise<void> {
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(TEMPLATE)}`));
  const url = withDatabase(adminUrl, TEMPLATE);
  const pool = createPool(url, { max: 2, applicationName: 'chaos-template' });
  try {
    await prepareAdmissionWorld(pool, url);
    await installOperatorLogin(pool);
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(STOP_CONDITION_SQL);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
    await pool.query(`SELECT * FROM fn_drift_rebaseline('chaos-harness', 'the chaos stop-condition dim (chaos/stop-condition.sql)', 'CHAOS-SETUP')`);
    const findings = await pool.query<{ dim: string; detail: string }>('SELECT dim, detail FROM fn_drift_tick()');
    if (findings.rows.length) throw new Error(`the chaos world is not clean after its rebaseline: ${findings.rows.map((f) => `${f.dim}: ${f.detail}`).join('; ')}`);
  } finally {
    await pool.end();
  }
}
