// The admission end to end on a real Temporal server (issue 10 item 1), beside the dev server the rest
// of the suite runs on: Temporal 1.32.2 built from the Go module proxy (stack/temporal-server.ts; the
// build is cached in BIRTHGATE_HOME/tools/ between runs), one process with frontend, history, matching
// and worker on PostgreSQL 16 persistence and advanced visibility, its two databases made and migrated
// on the harness's cluster for this file and dropped after it.
//
// The scenarios are the dev server's own tests, unchanged: the harness takes its Temporal address from
// the environment (test/support/env.ts), so test/admit.test.ts and test/admit-crash.test.ts run again,
// in a child `node --test`, with TEMPORAL_ADDRESS pointing at the real server — the happy path, a stuck
// birth admitted by break-glass, and a worker SIGKILLed right after its insert committed. A renamed or
// removed scenario fails here by name rather than being skipped. Then the real server's own
// databases must hold those admissions.
//
// The product's own path too: `birthgate stack up --temporal server --detach` on a home of its own
// (sharing the cached build), `stack status --json` naming the engine, `stack down`.
//
// When no build is cached the first run builds the server (~5 minutes with a cold Go cache): within
// BUILD_BUDGET_MS or the file fails, saying so — it never skips.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Connection } from '@temporalio/client';
import { loadConfig, projectRoot } from '../config/index.ts';
import { searchAttributeCliTypes } from '../contracts/search-attributes.ts';
import { withClient, withDatabase } from '../db/pool.ts';
import { isAlive } from '../stack/postgres.ts';
import { freePort, waitFor } from '../stack/ports.ts';
import {
  DEFAULT_TEMPORAL_DATABASES, ensureTemporalServerBuild, freeServerPort, NUM_HISTORY_SHARDS, prepareTemporalDatabases, SERVER_HEALTH_PATH,
  startTemporalServerOn, TEMPORAL_DB_ROLE, TEMPORAL_SERVER_VERSION, temporalServerBuildDir, throwawayDatabases, type RunningTemporalServer,
} from '../stack/temporal-server.ts';
import { runCli } from './support/cli.ts';
import { freshDatabase } from './support/db.ts';
import { testEnv } from './support/env.ts';

/** The dev server's tests this file runs again on the real server: file → exact test names. */
const REAL_SERVER_SCENARIOS: Record<string, string[]> = {
  'test/admit.test.ts': [
    'a clean admission is born once: one row, one birth, the permit FINALIZED and linked',
    'a stop-condition parks a stuck birth (stuck, visibility); break-glass admits it under a ledger entry',
  ],
  'test/admit-crash.test.ts': [
    'SIGKILL at after-insert-commit: a new worker finishes with exactly one row, one birth and one FINALIZED permit',
  ],
};
/** A cold build on a fresh machine (Go toolchain download included) is ~5 minutes. */
const BUILD_BUDGET_MS = 10 * 60_000;
/** The cluster-wide `temporal` login's password: the configured one, as a server engine harness (BIRTHGATE_TEMPORAL_ENGINE=server) gives it on the same cluster. */
const TEMPORAL_DB_PASSWORD = loadConfig().temporalDbPassword;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** node --test over `files` with the given name patterns; the TAP output and the exit code. */
function runTests(files: string[], names: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; tap: string }> {
  const child = spawn(process.execPath, [
    '--import', 'tsx', '--test', '--test-reporter=tap', '--test-concurrency=1', '--test-timeout=300000',
    ...names.map((n) => `--test-name-pattern=^${escape(n)}$`), ...files,
  ], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tap = '';
  child.stdout.on('data', (d) => (tap += d));
  child.stderr.on('data', (d) => (tap += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, tap })));
}

/** Each test's outcome in a TAP stream, by name: 'ok', 'not ok' or 'skip'. */
function outcomes(tap: string): Map<string, string> {
  const seen = new Map<string, string>();
  for (const m of tap.matchAll(/^\s*(ok|not ok) \d+ - (.*?)(\s+#\s*(SKIP|TODO).*)?$/gm)) {
    seen.set(m[2]!.trim(), m[3] ? 'skip' : m[1]!);
  }
  return seen;
}

describe('a real Temporal server on PostgreSQL (issue 10)', () => {
  let server: RunningTemporalServer;
  let scratch: string;
  const databases = throwawayDatabases('bg_temporal_test');
  const env = testEnv();
  let metricsPort: number;
  before(async () => {
    metricsPort = await freePort();
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'birthgate-real-server-'));
    server = await startTemporalServerOn({
      adminUrl: env.adminUrl,
      home: loadConfig().home, // the project's tools folder: the build is reused by later runs
      password: TEMPORAL_DB_PASSWORD,
      namespace: env.namespace,
      logFile: path.join(scratch, 'temporal-server.log'),
      databases,
      dropOnStop: true,
      buildTimeoutMs: BUILD_BUDGET_MS,
      metricsEndpoint: `127.0.0.1:${metricsPort}`, // the template's optional metrics block, as temporal-compose.yml turns it on
      log: (line) => process.stderr.write(`[real-server] ${line}\n`),
    });
  });
  after(async () => {
    await server?.stop();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  test(`the server is Temporal ${TEMPORAL_SERVER_VERSION} on PostgreSQL: its own databases hold the namespace, ${NUM_HISTORY_SHARDS} history shards and our search attributes`, async () => {
    assert.equal(server.version, TEMPORAL_SERVER_VERSION);
    const persistence = withDatabase(env.adminUrl, databases.persistence);
    const visibility = withDatabase(env.adminUrl, databases.visibility);
    await withClient(persistence, async (c) => {
      const ns = await c.query<{ name: string }>('SELECT name FROM namespaces ORDER BY name');
      assert.ok(ns.rows.some((r) => r.name === env.namespace), `namespace ${env.namespace} in ${databases.persistence}.namespaces`);
      assert.deepEqual((await c.query('SELECT count(*)::int AS n FROM shards')).rows, [{ n: NUM_HISTORY_SHARDS }]);
    });
    await withClient(env.adminUrl, async (c) => {
      const owners = await c.query('SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = ANY($1) ORDER BY datname',
        [[databases.persistence, databases.visibility]]);
      assert.deepEqual(owners.rows, [databases.persistence, databases.visibility].sort().map((datname) => ({ datname, owner: TEMPORAL_DB_ROLE })));
      const role = await c.query('SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1', [TEMPORAL_DB_ROLE]);
      assert.deepEqual(role.rows, [{ rolsuper: false, rolcreatedb: false, rolcreaterole: false }], 'Temporal\'s login can do nothing beyond its databases');
    });
    // Advanced visibility: the visibility database has the executions table the list queries read.
    await withClient(visibility, async (c) => {
      assert.equal((await c.query(`SELECT to_regclass('public.executions_visibility') IS NOT NULL AS ok`)).rows[0].ok, true);
    });
    const connection = await Connection.connect({ address: server.address });
    try {
      const attrs = await connection.operatorService.listSearchAttributes({ namespace: env.namespace });
      for (const name of Object.keys(searchAttributeCliTypes)) assert.ok(name in (attrs.customAttributes ?? {}), `${name} registered`);
    } finally {
      await connection.close();
    }
    // The path temporal-compose.yml's health check calls, on the frontend's HTTP port.
    // (The HTTP listener may come up a moment after gRPC answers: a few tries.)
    const health = await waitFor('the frontend HTTP API', 20_000, async () => {
      const r = await fetch(`${server.httpUrl}${SERVER_HEALTH_PATH}`);
      return r.status === 200 ? ((await r.json()) as { serverVersion: string }) : undefined;
    });
    assert.equal(health.serverVersion, TEMPORAL_SERVER_VERSION);
    // PROMETHEUS_ENDPOINT renders the template's metrics block: the server's own Prometheus endpoint answers.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(metrics, /^# TYPE \w+ (counter|gauge|histogram)/m);
  });

  test('Temporal\'s databases are never the estate\'s: a name that is the estate\'s, or a database another role owns, is refused before anything is written', async () => {
    const build = await ensureTemporalServerBuild(loadConfig().home);
    const estate = await freshDatabase('estate_like'); // owned by the superuser, like an estate
    try {
      const attempt = (estateDatabase: string | undefined) => prepareTemporalDatabases({
        adminUrl: env.adminUrl, password: TEMPORAL_DB_PASSWORD, build, estateDatabase,
        databases: { persistence: estate.name, visibility: `${estate.name}_visibility` },
      });
      await assert.rejects(attempt(estate.name), /never the estate's .*refused/);
      await assert.rejects(attempt(undefined), new RegExp(`${estate.name} exists but belongs to postgres`));
      assert.deepEqual((await estate.pool.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`)).rows, [{ n: 0 }], 'no Temporal table in it');
      const other = await withClient(env.adminUrl, (c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [`${estate.name}_visibility`]));
      assert.equal(other.rowCount, 0, 'and no second database made beside it');
    } finally {
      await estate.dispose();
    }
  });

  test('the admission end to end on the real server: the happy path, stuck → break-glass, and a worker killed right after its insert (the dev server\'s tests, unchanged)', async (t) => {
    const expected = Object.values(REAL_SERVER_SCENARIOS).flat();
    const childEnv: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: env.namespace };
    delete childEnv.NODE_TEST_CONTEXT; // else the child thinks it runs inside this file's runner and runs no files
    const { code, tap } = await runTests(Object.keys(REAL_SERVER_SCENARIOS), expected, childEnv);
    const seen = outcomes(tap);
    const report = expected.map((n) => `${seen.get(n) ?? 'MISSING'}: ${n}`).join('\n');
    t.diagnostic(`on Temporal ${server.version} (${server.address}):`);
    for (const line of report.split('\n')) t.diagnostic(line);
    for (const name of expected) {
      assert.equal(seen.get(name), 'ok', `on the real server:\n${report}\n\n${tap.split('\n').slice(-60).join('\n')}`);
    }
    assert.equal(code, 0, tap.split('\n').slice(-60).join('\n'));

    // The admissions are the real server's: its persistence has their histories, its visibility
    // their closed executions (the dev server saw none of them).
    const visible = await withClient(withDatabase(env.adminUrl, databases.visibility), (c) => c.query<{ status: number; n: number }>(
      `SELECT status, count(*)::int AS n FROM executions_visibility WHERE workflow_type_name = 'dotBirthAdmit' GROUP BY status ORDER BY status`));
    const completed = visible.rows.find((r) => r.status === 2)?.n ?? 0; // WORKFLOW_EXECUTION_STATUS_COMPLETED
    assert.ok(completed >= expected.length, `at least ${expected.length} completed admissions in ${databases.visibility}: ${JSON.stringify(visible.rows)}`);
    const histories = await withClient(withDatabase(env.adminUrl, databases.persistence), (c) => c.query<{ n: number }>(
      'SELECT count(DISTINCT tree_id)::int AS n FROM history_node'));
    assert.ok(histories.rows[0]!.n >= expected.length, `histories in ${databases.persistence}.history_node: ${histories.rows[0]!.n}`);
  });

  test('`birthgate stack up --temporal server` runs the real server on the embedded PostgreSQL beside the estate, status names the engine, down stops it', async () => {
    const home = path.join(scratch, 'stack-home');
    // The build this file already made or reused, not a second one.
    fs.mkdirSync(path.dirname(temporalServerBuildDir(home)), { recursive: true });
    fs.symlinkSync(temporalServerBuildDir(loadConfig().home), temporalServerBuildDir(home));
    const cliEnv: NodeJS.ProcessEnv = {
      ...process.env,
      BIRTHGATE_HOME: home,
      BIRTHGATE_PG_PORT: String(await freePort()),
      BIRTHGATE_TEMPORAL_PORT: String(await freeServerPort()),
      BIRTHGATE_UI_PORT: String(await freePort()),
      TEMPORAL_CLI: env.temporalCli,
    };
    delete cliEnv.DATABASE_URL;
    delete cliEnv.TEMPORAL_ADDRESS;
    delete cliEnv.BIRTHGATE_TEMPORAL_ENGINE;
    try {
      const up = await runCli(['stack', 'up', '--temporal', 'server', '--detach'], cliEnv);
      assert.equal(up.code, 0, `${up.stdout}${up.stderr}`);
      const st = await runCli(['stack', 'status', '--json', '--show-secrets'], cliEnv);
      assert.equal(st.code, 0, st.stderr);
      const s = JSON.parse(st.stdout) as { running: boolean; engine: string; uiUrl: string | null; databaseUrl: string; temporalAddress: string; temporal: { detail: string } };
      assert.deepEqual([s.running, s.engine, s.uiUrl, s.temporalAddress], [true, 'server', null, `127.0.0.1:${cliEnv.BIRTHGATE_TEMPORAL_PORT}`]);
      assert.equal(s.temporal.detail, `Temporal server ${TEMPORAL_SERVER_VERSION}`);
      // Temporal's databases beside the estate's, never in it.
      const estate = new URL(s.databaseUrl).pathname.slice(1);
      await withClient(s.databaseUrl, async (c) => {
        const dbs = await c.query('SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = ANY($1) ORDER BY datname',
          [[DEFAULT_TEMPORAL_DATABASES.persistence, DEFAULT_TEMPORAL_DATABASES.visibility]]);
        assert.deepEqual(dbs.rows, [{ datname: 'temporal', owner: TEMPORAL_DB_ROLE }, { datname: 'temporal_visibility', owner: TEMPORAL_DB_ROLE }]);
        assert.deepEqual((await c.query(`SELECT to_regclass('public.executions') AS t, to_regclass('public.executions_visibility') AS v`)).rows, [{ t: null, v: null }],
          `no Temporal table in the estate's database ${estate}`);
      });
      const state = JSON.parse(fs.readFileSync(path.join(home, 'stack.json'), 'utf8')) as { engine: string; temporal: { pid: number } };
      assert.equal(state.engine, 'server');
      const down = await runCli(['stack', 'down'], cliEnv);
      assert.equal(down.code, 0, down.stderr);
      assert.equal(isAlive(state.temporal.pid), false, 'the server process is gone');
    } finally {
      await runCli(['stack', 'down'], cliEnv);
    }
  });
});
