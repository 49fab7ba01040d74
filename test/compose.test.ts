// temporal-compose.yml matches what is tested (issue 10 item 2). No Docker engine runs here, so the
// file is parsed and its wiring checked against what the code reads: the Temporal server's version,
// config template, dynamic config and environment are the real-server test's
// (stack/temporal-server.ts); the schema set-up uses the module's schemas; the setup registers exactly
// contracts/search-attributes.ts; every variable the worker's config reads is set (collected by
// watching loadConfig read an environment) and the worker needs no superuser URL; ports, addresses
// and depends_on line up; data lives in named volumes; no password is written in the file. The
// worker's health check is run for real against the harness's Temporal.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { NativeConnection, Worker } from '@temporalio/worker';
import { parse } from 'yaml';
import { z } from 'zod';
import { loadConfig, projectRoot } from '../config/index.ts';
import { searchAttributeCliTypes } from '../contracts/search-attributes.ts';
import { DEV_SERVER_DYNAMIC_CONFIG } from '../stack/temporal.ts';
import {
  CONFIG_TEMPLATE, DYNAMIC_CONFIG, NAMESPACE_RETENTION_SECONDS, NUM_HISTORY_SHARDS, SCHEMA_DIRS, SERVER_HEALTH_PATH,
  optionalTemplateVariables, requiredTemplateVariables, serverEnvironment, TEMPORAL_SERVER_VERSION,
} from '../stack/temporal-server.ts';
import { crashHooks, workerTarget } from '../workers/serve.ts';
import { testEnv } from './support/env.ts';
import { eventually, uniqueTaskQueue } from './support/temporal.ts';

const run = promisify(execFile);

const ServiceSchema = z.object({
  image: z.string().optional(),
  build: z.object({ context: z.string(), dockerfile: z.string() }).optional(),
  environment: z.record(z.string(), z.string()).default({}),
  ports: z.array(z.string()).default([]),
  volumes: z.array(z.string()).default([]),
  depends_on: z.record(z.string(), z.object({ condition: z.enum(['service_started', 'service_healthy', 'service_completed_successfully']) })).default({}),
  entrypoint: z.array(z.string()).optional(),
  command: z.array(z.string()).optional(),
  healthcheck: z.object({ test: z.array(z.string()) }).passthrough().optional(),
  restart: z.string().optional(),
}).passthrough();
const ComposeSchema = z.object({
  name: z.string(),
  services: z.record(z.string(), ServiceSchema),
  volumes: z.record(z.string(), z.unknown().nullable()),
});
type Service = z.infer<typeof ServiceSchema>;

const composeText = fs.readFileSync(path.join(projectRoot, 'temporal-compose.yml'), 'utf8');
const compose = ComposeSchema.parse(parse(composeText));
const svc = (name: string): Service => {
  const s = compose.services[name];
  assert.ok(s, `temporal-compose.yml has a service ${name}`);
  return s;
};

/** The variables that compose interpolates (`${NAME}`, `${NAME:?msg}`, `${NAME:-default}`), given values; `$$` is a literal `$`. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Z0-9_]+)(?::?[?-][^}]*)?\}/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    const v = vars[name!];
    assert.ok(v !== undefined, `no test value for \${${name}}`);
    return v;
  });
}
const SECRETS = { ESTATE_DB_PASSWORD: 'estate-secret', TEMPORAL_DB_PASSWORD: 'temporal-secret', BIRTHGATE_WORKER_PASSWORD: 'worker-secret' };
const envOf = (name: string): Record<string, string> =>
  Object.fromEntries(Object.entries(svc(name).environment).map(([k, v]) => [k, interpolate(v, SECRETS)]));

/** A service's entrypoint and command as the shell gets them (compose's `$$` is a literal `$`). */
const scriptOf = (name: string): string =>
  interpolate([...(svc(name).entrypoint ?? []), ...(svc(name).command ?? [])].join('\n'), SECRETS).replace(/\\\n/g, ' ');

/** Every environment variable `fn` reads, watched through a Proxy standing in for process.env. */
function variablesRead(fn: (env: NodeJS.ProcessEnv) => unknown): Set<string> {
  const read = new Set<string>();
  const note = (k: string | symbol) => (typeof k === 'string' ? read.add(k) : undefined);
  const env = new Proxy({} as NodeJS.ProcessEnv, {
    get: (_t, k) => (note(k), undefined),
    has: (_t, k) => (note(k), false),
  });
  fn(env);
  return read;
}

/** `ENV A=1 B=2` lines of the Dockerfile (with continuation lines). */
function dockerfileEnv(): Record<string, string> {
  const text = fs.readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const out: Record<string, string> = {};
  for (const line of text.split('\n').filter((l) => /^ENV\s/.test(l))) {
    for (const m of line.slice(4).matchAll(/([A-Z0-9_]+)=(\S+)/g)) out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * Variables the worker's code reads that the compose worker leaves to their defaults, and why. A
 * variable added to config/index.ts fails the test until it is set for the worker or listed here.
 */
const LEFT_TO_DEFAULT: Record<string, string> = {
  DATABASE_URL: 'no superuser URL for the worker: its own URL and TEMPORAL_ADDRESS are enough (workerTarget)',
  BIRTHGATE_OPERATOR_DATABASE_URL: 'break-glass is an operator\'s CLI act, never the worker\'s',
  BIRTHGATE_WORKER_PASSWORD: 'only derives the worker URL, which is given whole',
  TEMPORAL_CLI: 'the embedded stack\'s (`birthgate stack up`), never started by a compose worker',
  TEMPORAL_UI_URL: 'links printed by the CLI; the UI is temporal-ui\'s published port',
  BIRTHGATE_PG_PORT: 'the embedded stack\'s',
  BIRTHGATE_TEMPORAL_PORT: 'the embedded stack\'s',
  BIRTHGATE_UI_PORT: 'the embedded stack\'s',
  BIRTHGATE_PG_PASSWORD: 'the embedded stack\'s',
  BIRTHGATE_DB_NAME: 'the embedded stack\'s (the estate is named in the worker URL)',
  BIRTHGATE_TEMPORAL_ENGINE: 'the embedded stack\'s (compose runs its own server)',
  BIRTHGATE_TEMPORAL_DB_PASSWORD: 'the embedded stack\'s (compose gives TEMPORAL_DB_PASSWORD to temporal-db)',
  BIRTHGATE_METRICS_INTERVAL: 'the gauges\' default period (15 s) suits a scrape interval of the same order',
  BIRTHGATE_TEST_CRASH_AT: 'tests only (honoured under NODE_ENV=test)',
};

const containerPort = (mapping: string) => Number(mapping.split(':').at(-1));
const hostAndPort = (address: string) => {
  const [host, port] = address.split(':');
  return { host: host!, port: Number(port) };
};

describe('temporal-compose.yml matches what is tested', () => {
  test(`the Temporal server, its admin tools and the UI are the tested versions (server ${TEMPORAL_SERVER_VERSION})`, async () => {
    assert.equal(svc('temporal').image, `temporalio/server:${TEMPORAL_SERVER_VERSION}`);
    assert.equal(svc('temporal-schema').image, `temporalio/admin-tools:${TEMPORAL_SERVER_VERSION}`);
    assert.equal(svc('temporal-setup').image, `temporalio/admin-tools:${TEMPORAL_SERVER_VERSION}`);
    // The Web UI the dev server embeds (the one the UI tests see): `temporal --version` names it.
    const { stdout } = await run(testEnv().temporalCli, ['--version']);
    const ui = /UI ([\d.]+)/.exec(stdout)?.[1];
    assert.ok(ui, stdout);
    assert.equal(svc('temporal-ui').image, `temporalio/ui:${ui}`);
    for (const db of ['estate-db', 'temporal-db']) assert.match(svc(db).image!, /^postgres:16(\.|$)/, `${db} is PostgreSQL 16`);
  });

  test('the server runs the real-server test\'s config template and dynamic config, with the same environment variables', () => {
    const t = svc('temporal');
    const mounts = t.volumes.map((v) => v.split(':'));
    const mountOf = (file: string) => mounts.find(([src]) => path.resolve(projectRoot, src!) === file);
    const template = mountOf(CONFIG_TEMPLATE);
    const dynamic = mountOf(DYNAMIC_CONFIG);
    assert.ok(template && template[2] === 'ro', `${path.relative(projectRoot, CONFIG_TEMPLATE)} is mounted read-only`);
    assert.ok(dynamic && dynamic[2] === 'ro', `${path.relative(projectRoot, DYNAMIC_CONFIG)} is mounted read-only`);
    const script = scriptOf('temporal');
    assert.match(script, new RegExp(`exec temporal-server --config-file ${template[1]} --allow-no-auth start`));
    const env = envOf('temporal');
    assert.equal(env.DYNAMIC_CONFIG_FILE_PATH, dynamic[1]);
    assert.match(script, /export TEMPORAL_BROADCAST_ADDRESS=/, 'the broadcast address is the container\'s, set at start');
    // The same variables stack/temporal-server.ts gives the local server, and every one the template needs.
    const local = serverEnvironment({
      pg: { host: 'h', port: 1, user: 'u', password: 'p' }, databases: { persistence: 'a', visibility: 'b' },
      ports: { frontend: 1, frontendHttp: 2, frontendMembership: 3, history: 4, historyMembership: 5, matching: 6, matchingMembership: 7, worker: 8, workerMembership: 9 },
    });
    const optional = new Set(optionalTemplateVariables());
    const core = (keys: string[]) => keys.filter((k) => !optional.has(k)).sort();
    assert.deepEqual(core([...Object.keys(env), 'TEMPORAL_BROADCAST_ADDRESS']), core(Object.keys(local)));
    for (const k of Object.keys(env).filter((v) => optional.has(v))) assert.ok(env[k], `${k}: an optional template variable, set`);
    for (const v of requiredTemplateVariables()) assert.ok(env[v] || v === 'TEMPORAL_BROADCAST_ADDRESS', `the template needs ${v}`);
    assert.equal(env.NUM_HISTORY_SHARDS, String(NUM_HISTORY_SHARDS), 'the shard count the server is tested and benchmarked with');
    assert.equal(env.BIND_ON_IP, '0.0.0.0', 'reachable from the other containers');
  });

  test('the dynamic config carries every key the dev server is given, with the same value', () => {
    const dynamic = parse(fs.readFileSync(DYNAMIC_CONFIG, 'utf8')) as Record<string, Array<{ value: unknown }>>;
    for (const [key, value] of Object.entries(DEV_SERVER_DYNAMIC_CONFIG)) {
      assert.deepEqual(dynamic[key]?.map((c) => c.value), [value], `${key} in ${path.relative(projectRoot, DYNAMIC_CONFIG)}`);
    }
  });

  test('the schema set-up migrates both databases from the module\'s PostgreSQL schemas with the postgres12 plugin', () => {
    const s = svc('temporal-schema');
    const env = envOf('temporal-schema');
    const script = scriptOf('temporal-schema');
    assert.ok(s.restart === 'no');
    assert.equal(env.SQL_PLUGIN, 'postgres12');
    const server = envOf('temporal');
    for (const [db, dir] of [[server.DBNAME, SCHEMA_DIRS.persistence], [server.VISIBILITY_DBNAME, SCHEMA_DIRS.visibility]] as const) {
      assert.match(script, new RegExp(`--database ${db} setup-schema -v 0\\.0`));
      assert.match(script, new RegExp(`--database ${db} update-schema -d /etc/temporal/schema/${dir}\\n`));
    }
    assert.equal(env.SQL_HOST, server.POSTGRES_SEEDS);
    assert.equal(env.SQL_PORT, server.DB_PORT);
    assert.equal(env.SQL_USER, server.POSTGRES_USER);
    assert.equal(svc('temporal-schema').environment.SQL_PASSWORD, svc('temporal').environment.POSTGRES_PWD);
  });

  test('the setup registers the namespace and exactly the search attributes of contracts/search-attributes.ts', () => {
    const script = scriptOf('temporal-setup');
    const registered = Object.fromEntries([...script.matchAll(/--name (\w+) --type (\w+)/g)].map((m) => [m[1], m[2]]));
    assert.deepEqual(registered, searchAttributeCliTypes);
    assert.match(script, new RegExp(`namespace create --namespace "\\$TEMPORAL_NAMESPACE" --retention ${NAMESPACE_RETENTION_SECONDS / 3600}h`));
    assert.equal(envOf('temporal-setup').TEMPORAL_NAMESPACE, envOf('worker').TEMPORAL_NAMESPACE, 'the worker polls the namespace the setup creates');
  });

  test('every variable the worker reads is set (or its default is right for a container), and it needs no superuser URL', async () => {
    const read = variablesRead((env) => {
      loadConfig(env);
      crashHooks(env);
    });
    assert.ok(read.has('BIRTHGATE_WORKER_DATABASE_URL') && read.has('TEMPORAL_ADDRESS'), `the watch sees config/index.ts read: ${[...read].join(', ')}`);
    const worker = envOf('worker');
    const image = dockerfileEnv();
    for (const v of read) {
      assert.ok(v in worker || v in image || v in LEFT_TO_DEFAULT,
        `the worker reads ${v}: set it in temporal-compose.yml's worker (or the Dockerfile), or say in LEFT_TO_DEFAULT why its default is right`);
    }
    for (const v of Object.keys(worker)) assert.ok(read.has(v), `the compose worker sets ${v}, which the worker never reads`);
    for (const v of Object.keys(LEFT_TO_DEFAULT)) assert.ok(read.has(v), `LEFT_TO_DEFAULT lists ${v}, which the worker no longer reads`);
    // The worker's own resolution, on the container's environment: no stack, no superuser URL.
    const config = loadConfig({ ...image, ...worker });
    const target = await workerTarget(config, () => Promise.reject(new Error('the compose worker would need a stack or a superuser URL')));
    const url = new URL(target.workerDatabaseUrl);
    assert.equal(url.username, 'birthgate_worker');
    assert.equal(url.password, SECRETS.BIRTHGATE_WORKER_PASSWORD);
    assert.equal(config.home, image.BIRTHGATE_HOME, 'the bundle `worker build` wrote in the image is where the worker looks');
    assert.equal(config.taskQueue, loadConfig({}).taskQueue, 'the production task queue');
  });

  test('addresses, ports and depends_on line up', () => {
    const temporal = envOf('temporal');
    const frontend = `temporal:${temporal.FRONTEND_GRPC_PORT}`;
    for (const s of ['temporal-setup', 'temporal-ui', 'worker']) assert.equal(envOf(s).TEMPORAL_ADDRESS, frontend, `${s} reaches the frontend`);
    assert.deepEqual(svc('temporal').ports.map(containerPort), [Number(temporal.FRONTEND_GRPC_PORT)]);
    // The worker's database is the estate's, on its container port.
    const estate = envOf('estate-db');
    const url = new URL(envOf('worker').BIRTHGATE_WORKER_DATABASE_URL!);
    assert.deepEqual({ host: url.hostname, port: url.port, db: url.pathname.slice(1) }, { host: 'estate-db', port: '5432', db: estate.POSTGRES_DB });
    assert.ok(svc('estate-db').ports.some((p) => containerPort(p) === 5432));
    // Temporal's databases are temporal-db's, as its own user (whose default database is `temporal`).
    const tdb = envOf('temporal-db');
    assert.deepEqual(hostAndPort(`${temporal.POSTGRES_SEEDS}:${temporal.DB_PORT}`), { host: 'temporal-db', port: 5432 });
    assert.equal(temporal.POSTGRES_USER, tdb.POSTGRES_USER);
    assert.equal(temporal.DBNAME, tdb.POSTGRES_DB ?? tdb.POSTGRES_USER);
    assert.equal(svc('temporal').environment.POSTGRES_PWD, svc('temporal-db').environment.POSTGRES_PASSWORD, 'one password variable');
    // The server's health check asks the frontend's HTTP API, on its port, the path the real-server test proves.
    assert.deepEqual(svc('temporal').healthcheck?.test.slice(-1), [`http://127.0.0.1:${temporal.FRONTEND_HTTP_PORT}${SERVER_HEALTH_PATH}`]);
    // Metrics: each scrape port the environment opens is exposed on the compose network.
    const exposed = (name: string) => ((compose.services[name]!.expose as string[] | undefined) ?? []).map(Number);
    assert.ok(exposed('worker').includes(Number(envOf('worker').BIRTHGATE_METRICS_PORT)), 'the worker\'s metrics port is exposed');
    assert.equal(envOf('worker').BIRTHGATE_METRICS_HOST, '0.0.0.0', 'and bound where a scraper reaches it');
    assert.ok(exposed('temporal').includes(hostAndPort(temporal.PROMETHEUS_ENDPOINT!).port), 'the server\'s metrics port is exposed');
    // The UI: CORS for the published port.
    const uiPort = svc('temporal-ui').ports[0]!.split(':')[0];
    assert.equal(envOf('temporal-ui').TEMPORAL_CORS_ORIGINS, `http://localhost:${uiPort}`);
    // depends_on: every target exists; "healthy" ones have a health check; "completed" ones are one-shots.
    for (const [name, s] of Object.entries(compose.services)) {
      for (const [target, { condition }] of Object.entries(s.depends_on)) {
        const t = svc(target);
        if (condition === 'service_healthy') assert.ok(t.healthcheck, `${name} waits for ${target} to be healthy: it needs a health check`);
        if (condition === 'service_completed_successfully') assert.equal(t.restart, 'no', `${name} waits for ${target} to complete: a one-shot`);
      }
    }
    for (const [name, s] of Object.entries(compose.services)) {
      if (s.restart !== 'no') assert.ok(s.healthcheck, `${name} runs for good: it has a health check`);
    }
    assert.deepEqual(Object.keys(svc('worker').depends_on).sort(), ['estate-db', 'temporal-setup']);
    assert.equal(svc('worker').stop_grace_period, '30s', 'covers the 15 s drain + 5 s force (README "Stopping drains")');
  });

  test('the worker is built from the repo\'s Dockerfile: Node 20, npm ci, `birthgate worker build` at build time, `birthgate worker` at run time', () => {
    assert.deepEqual(svc('worker').build, { context: '.', dockerfile: 'Dockerfile' });
    const dockerfile = fs.readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^FROM node:20\b/m);
    assert.match(dockerfile, /^RUN npm ci\b/m);
    assert.match(dockerfile, /^RUN node bin\/birthgate\.mjs worker build$/m);
    assert.match(dockerfile, /^CMD \["node", "bin\/birthgate\.mjs", "worker"\]$/m);
    const ignored = fs.readFileSync(path.join(projectRoot, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', '.birthgate', '.env', '.git']) assert.ok(ignored.includes(p), `.dockerignore keeps ${p} out of the image`);
  });

  test('data lives in named volumes, and no password is written in the file', () => {
    for (const [db, dir] of [['estate-db', '/var/lib/postgresql/data'], ['temporal-db', '/var/lib/postgresql/data']] as const) {
      const volume = svc(db).volumes.find((v) => v.endsWith(`:${dir}`))?.split(':')[0];
      assert.ok(volume && volume in compose.volumes, `${db} keeps ${dir} in a named volume`);
    }
    const used = Object.values(compose.services).flatMap((s) => s.volumes.map((v) => v.split(':')[0]!)).filter((v) => !v.startsWith('.'));
    assert.deepEqual([...new Set(used)].sort(), Object.keys(compose.volumes).sort(), 'every named volume declared, every declared one used');
    // Every password-like value is a required variable, with no default to fall back on.
    for (const [name, s] of Object.entries(compose.services)) {
      for (const [k, v] of Object.entries(s.environment)) {
        if (/PASSWORD|PWD|SECRET|TOKEN/.test(k)) assert.match(v, /^\$\{[A-Z0-9_]+:\?[^}]*\}$/, `${name}.${k} is a required variable, not a value`);
        if (/^postgres(ql)?:\/\//.test(v)) assert.match(new URL(v.replace(/\$\{[^}]*\}/g, 'x')).password, /^x?$/, `${name}.${k} carries no password`);
      }
    }
    assert.doesNotMatch(composeText, /\$\{[A-Z0-9_]*(PASSWORD|PWD)[A-Z0-9_]*:-/, 'no default for a password');
    const defaults = [loadConfig({}).pgPassword, loadConfig({}).workerPassword, loadConfig({}).temporalDbPassword];
    for (const d of defaults) assert.ok(!composeText.includes(d), `the local default password ${d} is not in the file`);
    const example = fs.readFileSync(path.join(projectRoot, '.env.example'), 'utf8');
    const needed = [...new Set([...composeText.matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((m) => m[1]!))].sort();
    assert.deepEqual(needed, Object.keys(SECRETS).sort());
    for (const v of needed) assert.match(example, new RegExp(`^${v}=$`, 'm'), `.env.example documents ${v}, empty`);
    assert.ok(fs.readFileSync(path.join(projectRoot, '.gitignore'), 'utf8').split('\n').includes('.env'), '.env is git-ignored');
  });

  describe('the worker\'s health check, run as written', () => {
    const check = () => svc('worker').healthcheck!.test;
    let connection: NativeConnection;
    let worker: Worker;
    let running: Promise<void>;
    const taskQueue = uniqueTaskQueue('compose-health');
    const probe = (queue: string) => {
      const [kind, cmd, ...args] = check();
      assert.equal(kind, 'CMD');
      const { temporalAddress, namespace } = testEnv();
      return run(cmd!, args, { cwd: projectRoot, env: { PATH: process.env.PATH, TEMPORAL_ADDRESS: temporalAddress, TEMPORAL_NAMESPACE: namespace, BIRTHGATE_TASK_QUEUE: queue }, timeout: 30_000 })
        .then(() => 0, (err: { code?: number }) => err.code ?? 1);
    };
    before(async () => {
      // A worker on this host polling activities of the queue (the admission worker polls both kinds).
      connection = await NativeConnection.connect({ address: testEnv().temporalAddress });
      worker = await Worker.create({ connection, namespace: testEnv().namespace, taskQueue, activities: { noop: async () => undefined }, identity: `birthgate-worker:${process.pid}@${os.hostname()}` });
      running = worker.run();
    });
    after(async () => {
      worker?.shutdown();
      await running;
      await connection?.close();
    });

    test('healthy while a worker on this host polls the queue, unhealthy where none does', async () => {
      // The server lists a poller once its first poll arrived: a few tries.
      await eventually(async () => ((await probe(taskQueue)) === 0 ? true : undefined), 'the health check passes', 20_000);
      assert.equal(await probe(uniqueTaskQueue('compose-nobody')), 1);
    });
  });
});
