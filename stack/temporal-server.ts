// A real Temporal server (issue 10 item 1): frontend, history, matching and worker in one process on
// PostgreSQL 16 persistence and PostgreSQL advanced visibility (the postgres12 plugin), the way an
// operator's cluster runs, for `birthgate stack up --temporal server`, the real-server tests and the
// benchmarks. The dev server (stack/temporal.ts) stays the default.
//
// - The binaries: Temporal Server 1.32.2 and temporal-sql-tool built from the Go module proxy, once
//   (stack/temporal-server/build.ts).
// - The databases `temporal` and `temporal_visibility` are created next to the estate (the embedded
//   PostgreSQL or DATABASE_URL's server), owned by a login role `temporal` that can do nothing else,
//   and migrated with temporal-sql-tool. Never the estate's database: a name that collides is refused.
// - The config is the repo's template (stack/temporal-server/config.template.yaml), rendered by the
//   server itself from the environment given here; temporal-compose.yml mounts the same file.
// - Ready means usable: the namespace exists, our search attributes are registered, and a workflow
//   carrying every one of them can be started (then terminated) — a registered namespace or attribute
//   reaches the frontend's and history's caches a few seconds after the call that created it.
import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time.js';
import pg from 'pg';
import { z } from 'zod';
import { projectRoot } from '../config/index.ts';
import { withClient, withDatabase } from '../db/pool.ts';
import { searchAttributeCliTypes } from '../contracts/search-attributes.ts';
import { isPortFree, waitFor } from './ports.ts';
import { ensureSearchAttributes, stopChild, type RunningTemporal } from './temporal.ts';
import { SCHEMA_DIRS, TEMPORAL_SERVER_VERSION, ensureTemporalServerBuild, type TemporalServerBuild } from './temporal-server/build.ts';

export {
  ensureTemporalServerBuild, GO_TOOLCHAIN, SCHEMA_DIRS, TEMPORAL_SERVER_VERSION, temporalServerBuildDir, type TemporalServerBuild,
} from './temporal-server/build.ts';

const run = promisify(execFile);

export const TEMPLATE_DIR = path.join(projectRoot, 'stack', 'temporal-server');
export const CONFIG_TEMPLATE = path.join(TEMPLATE_DIR, 'config.template.yaml');
export const DYNAMIC_CONFIG = path.join(TEMPLATE_DIR, 'dynamicconfig.yaml');
/**
 * History shards: fixed when the cluster's database is first set up, never changed afterwards.
 * 4 for the one-process server here (each shard runs its own queue readers against PostgreSQL, so
 * more shards on a 2-core machine only add idle polling); the template's default is this number.
 * A production cluster chooses once — README "Sizing a production cluster".
 */
export const NUM_HISTORY_SHARDS = 4;
/** How long closed workflows stay visible (a parked birth is open, whatever its age). */
export const NAMESPACE_RETENTION_SECONDS = 7 * 24 * 3600;
/** The frontend's HTTP API path a health check calls (GetSystemInfo): temporal-compose.yml's, tested here. */
export const SERVER_HEALTH_PATH = '/api/v1/system-info';
/** The login Temporal's databases belong to. */
export const TEMPORAL_DB_ROLE = 'temporal';

export type TemporalDatabases = { persistence: string; visibility: string };
export const DEFAULT_TEMPORAL_DATABASES: TemporalDatabases = { persistence: 'temporal', visibility: 'temporal_visibility' };

const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case PostgreSQL identifier');

/**
 * The role and the two databases, created when absent, then migrated to the module's schema
 * versions (temporal-sql-tool's setup-schema and update-schema are no-ops on an up-to-date database).
 * `estateDatabase` names the database that must never be used.
 */
export async function prepareTemporalDatabases(o: {
  adminUrl: string;
  password: string;
  databases: TemporalDatabases;
  estateDatabase: string | undefined;
  build: TemporalServerBuild;
  log?: (line: string) => void;
}): Promise<void> {
  const names = [identifier.parse(o.databases.persistence), identifier.parse(o.databases.visibility)];
  const refused = names.filter((n) => n === o.estateDatabase || n === 'postgres' || n.startsWith('template'));
  if (refused.length || names[0] === names[1]) {
    throw new Error(`Temporal's databases must be two of their own, never the estate's (${o.estateDatabase ?? '?'}): refused ${[...new Set(refused.length ? refused : names)].join(', ')}`);
  }
  await withClient(o.adminUrl, async (c) => {
    await c.query('BEGIN');
    try {
      // Cluster-wide: concurrent starters on one cluster (tests, a bench) take turns creating it.
      await c.query('LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE');
      const role = await c.query<{ super: boolean; createdb: boolean; createrole: boolean }>(
        'SELECT rolsuper AS super, rolcreatedb AS createdb, rolcreaterole AS createrole FROM pg_roles WHERE rolname = $1', [TEMPORAL_DB_ROLE]);
      if (role.rowCount === 0) {
        const ddl = await c.query<{ sql: string }>(
          'SELECT format($q$CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L$q$, $1::text, $2::text) AS sql',
          [TEMPORAL_DB_ROLE, o.password]);
        await c.query(ddl.rows[0]!.sql);
        o.log?.(`created login ${TEMPORAL_DB_ROLE}`);
      } else if (role.rows[0]!.super || role.rows[0]!.createdb || role.rows[0]!.createrole) {
        // Somebody else's role of that name (another Temporal on a shared server?): never reused with more rights.
        throw new Error(`the role ${TEMPORAL_DB_ROLE} exists with SUPERUSER, CREATEDB or CREATEROLE: refusing to run Temporal as it`);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    // An existing login keeps its password (another server may use it): ours must be the one it has.
    const asTemporal = new URL(o.adminUrl);
    asTemporal.username = TEMPORAL_DB_ROLE;
    asTemporal.password = o.password;
    await withClient(asTemporal.toString(), (t) => t.query('SELECT 1')).catch((err: Error) => {
      throw new Error(`cannot log in as ${TEMPORAL_DB_ROLE} with BIRTHGATE_TEMPORAL_DB_PASSWORD's password: ${err.message}`);
    });
    for (const db of names) {
      const found = await c.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [db]);
      if (found.rowCount === 0) {
        const ddl = await c.query<{ sql: string }>('SELECT format($q$CREATE DATABASE %I OWNER %I$q$, $1::text, $2::text) AS sql', [db, TEMPORAL_DB_ROLE]);
        await c.query(ddl.rows[0]!.sql).catch((err: pg.DatabaseError) => {
          if (err.code !== '42P04') throw err; // created meanwhile by a concurrent starter
        });
        o.log?.(`created database ${db} (owner ${TEMPORAL_DB_ROLE})`);
      } else if (found.rows[0]!.owner !== TEMPORAL_DB_ROLE) {
        throw new Error(`database ${db} exists but belongs to ${found.rows[0]!.owner}, not ${TEMPORAL_DB_ROLE}: refusing to put Temporal's tables into it`);
      }
    }
  });
  const u = new URL(o.adminUrl);
  const base = ['--plugin', 'postgres12', '--endpoint', u.hostname, '--port', u.port || '5432', '--user', TEMPORAL_DB_ROLE];
  // The password goes through the environment, not the argument list (`ps` shows arguments).
  const env = { PATH: process.env.PATH ?? '', SQL_PASSWORD: o.password };
  for (const [db, dir] of [[names[0]!, SCHEMA_DIRS.persistence], [names[1]!, SCHEMA_DIRS.visibility]] as const) {
    try {
      await run(o.build.sqlTool, [...base, '--database', db, 'setup-schema', '-v', '0.0'], { env, timeout: 120_000 });
      await run(o.build.sqlTool, [...base, '--database', db, 'update-schema', '-d', path.join(o.build.schemaRoot, dir)], { env, timeout: 300_000 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      const lines = `${e.stdout ?? ''}\n${e.stderr ?? ''}`.split('\n').filter((l) => /ERROR|FATAL|error/.test(l));
      throw new Error(`temporal-sql-tool could not migrate ${db}: ${(lines.slice(-2).join(' | ') || e.message).trim()}`);
    }
  }
  o.log?.(`migrated ${names.join(' and ')} to Temporal ${TEMPORAL_SERVER_VERSION}'s schema`);
}

/** The environment the config template reads (every `env "…"` in it). */
export type ServerEnvironment = Record<string, string>;

export function serverEnvironment(o: {
  pg: { host: string; port: number; user: string; password: string };
  databases: TemporalDatabases;
  ports: ServerPorts;
  logLevel?: string;
  metricsEndpoint?: string;
}): ServerEnvironment {
  return {
    DBNAME: o.databases.persistence,
    VISIBILITY_DBNAME: o.databases.visibility,
    POSTGRES_SEEDS: o.pg.host,
    DB_PORT: String(o.pg.port),
    POSTGRES_USER: o.pg.user,
    POSTGRES_PWD: o.pg.password,
    NUM_HISTORY_SHARDS: String(NUM_HISTORY_SHARDS),
    FRONTEND_GRPC_PORT: String(o.ports.frontend),
    FRONTEND_HTTP_PORT: String(o.ports.frontendHttp),
    FRONTEND_MEMBERSHIP_PORT: String(o.ports.frontendMembership),
    HISTORY_GRPC_PORT: String(o.ports.history),
    HISTORY_MEMBERSHIP_PORT: String(o.ports.historyMembership),
    MATCHING_GRPC_PORT: String(o.ports.matching),
    MATCHING_MEMBERSHIP_PORT: String(o.ports.matchingMembership),
    WORKER_GRPC_PORT: String(o.ports.worker),
    WORKER_MEMBERSHIP_PORT: String(o.ports.workerMembership),
    BIND_ON_IP: '127.0.0.1',
    TEMPORAL_BROADCAST_ADDRESS: '127.0.0.1',
    DYNAMIC_CONFIG_FILE_PATH: DYNAMIC_CONFIG,
    LOG_LEVEL: o.logLevel ?? 'warn',
    ...(o.metricsEndpoint ? { PROMETHEUS_ENDPOINT: o.metricsEndpoint } : {}),
  };
}

export type ServerPorts = {
  frontend: number; frontendHttp: number; frontendMembership: number;
  history: number; historyMembership: number;
  matching: number; matchingMembership: number;
  worker: number; workerMembership: number;
};

/**
 * Temporal's cluster_membership table keeps each service's gRPC port as a smallint: a port above
 * 32767 (every port the kernel hands out for port 0 here) stops the server at start ("out of range
 * for type smallint"). So ports are drawn from below that and checked free.
 */
export const MAX_SERVER_PORT = 32767;

async function lowFreePort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const p = randomInt(20_000, MAX_SERVER_PORT + 1);
    if (!taken.has(p) && (await isPortFree(p))) return taken.add(p), p;
  }
  throw new Error(`no free port between 20000 and ${MAX_SERVER_PORT} for the Temporal server`);
}

/** A free port the server can use (tests and `stack up` choosing one). */
export const freeServerPort = (): Promise<number> => lowFreePort(new Set());

/** The frontend's gRPC port as asked (or one drawn); every internal port free right now (they only bind 127.0.0.1). */
async function allocatePorts(frontendPort: number | undefined): Promise<ServerPorts> {
  const taken = new Set<number>(frontendPort ? [frontendPort] : []);
  const next = () => lowFreePort(taken);
  return {
    frontend: frontendPort ?? (await next()), frontendHttp: await next(), frontendMembership: await next(),
    history: await next(), historyMembership: await next(),
    matching: await next(), matchingMembership: await next(),
    worker: await next(), workerMembership: await next(),
  };
}

/** The variables the template reads only under `if env "…"`: a feature that is off without them. */
export function optionalTemplateVariables(template = fs.readFileSync(CONFIG_TEMPLATE, 'utf8')): string[] {
  return [...new Set([...template.matchAll(/if env "([A-Z0-9_]+)"/g)].map((m) => m[1]!))].sort();
}

/** The variables the template reads with no default: the server cannot start without them. */
export function requiredTemplateVariables(template = fs.readFileSync(CONFIG_TEMPLATE, 'utf8')): string[] {
  const all = [...template.matchAll(/\(?env "([A-Z0-9_]+)"\)?/g)].map((m) => m[1]!);
  const defaulted = new Set([...template.matchAll(/default "[^"]*" \(env "([A-Z0-9_]+)"\)/g)].map((m) => m[1]!));
  const optional = new Set([...template.matchAll(/if env "([A-Z0-9_]+)"/g)].map((m) => m[1]!));
  return [...new Set(all)].filter((v) => !defaulted.has(v) && !optional.has(v)).sort();
}

export type RunningTemporalServer = Omit<RunningTemporal, 'uiUrl'> & {
  engine: 'server';
  version: string;
  ports: ServerPorts;
  /** The frontend's HTTP API (`/api/v1/…`), what temporal-compose.yml's health check calls. */
  httpUrl: string;
  databases: TemporalDatabases;
};

/**
 * Start the server on prepared databases, then make the namespace usable: registered, our search
 * attributes added, a workflow carrying all of them startable.
 */
export async function startTemporalServer(o: {
  build: TemporalServerBuild;
  pg: { host: string; port: number; password: string };
  databases: TemporalDatabases;
  /** Default: a free one below MAX_SERVER_PORT. */
  frontendPort?: number;
  namespace: string;
  logFile: string;
  metricsEndpoint?: string;
}): Promise<RunningTemporalServer> {
  if (o.frontendPort !== undefined && o.frontendPort > MAX_SERVER_PORT) {
    throw new Error(`the Temporal server's frontend port must be at most ${MAX_SERVER_PORT} (its membership table keeps ports as smallint): ${o.frontendPort}`);
  }
  const ports = await allocatePorts(o.frontendPort);
  const env = serverEnvironment({ pg: { ...o.pg, user: TEMPORAL_DB_ROLE }, databases: o.databases, ports, metricsEndpoint: o.metricsEndpoint });
  const missing = requiredTemplateVariables().filter((v) => !env[v]);
  if (missing.length) throw new Error(`the Temporal server config template needs ${missing.join(', ')}`);
  fs.mkdirSync(path.dirname(o.logFile), { recursive: true });
  const log = fs.openSync(o.logFile, 'a');
  // Only the template's variables: nothing of the caller's environment (TEMPORAL_ADDRESS, …) leaks in.
  const child = spawn(o.build.server, ['--config-file', CONFIG_TEMPLATE, '--allow-no-auth', 'start'], { stdio: ['ignore', log, log], env, cwd: o.build.dir });
  fs.closeSync(log);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `temporal server exited (${signal ?? code}); see ${o.logFile}`));
  const address = `127.0.0.1:${ports.frontend}`;
  const stop = () => stopChild(child, 20_000);
  try {
    const version = await waitFor('the Temporal server', 90_000, async () => {
      if (exited) return null; // stop waiting: the error below says why
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        return (await connection.workflowService.getSystemInfo({})).serverVersion ?? undefined;
      } finally {
        await connection.close();
      }
    });
    if (exited || !version) throw new Error(exited ?? 'the Temporal server reports no version');
    await ensureNamespace(address, o.namespace);
    await ensureSearchAttributes(address, o.namespace);
    await waitUntilUsable(address, o.namespace, () => exited);
    return {
      engine: 'server', child, address, stop, version, ports,
      httpUrl: `http://127.0.0.1:${ports.frontendHttp}`, databases: o.databases,
    };
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}${exited && !(err as Error).message.includes(exited) ? `; ${exited}` : ''}${logTail(o.logFile)}`);
  }
}

/** The server's last fatal or error line, for a start that failed (the log may go with a scratch folder). */
function logTail(file: string): string {
  try {
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    const bad = lines.filter((l) => /"level":"(fatal|error)"|Unable to/.test(l)).slice(-1)[0];
    return bad ? `\n  server log: ${bad.slice(0, 600)}` : '';
  } catch {
    return '';
  }
}

/** Register the namespace unless it exists (the dev server makes its own; a real server does not). */
export async function ensureNamespace(address: string, namespace: string): Promise<boolean> {
  const connection = await Connection.connect({ address });
  try {
    await connection.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: msToTs(NAMESPACE_RETENTION_SECONDS * 1000),
      description: 'birthgate admissions',
    });
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 6) return false; // ALREADY_EXISTS
    throw err;
  } finally {
    await connection.close();
  }
}

/** Every custom search attribute, with a value of its type: a start that carries them proves them registered. */
function probeAttributes(): SearchAttributePair[] {
  return Object.entries(searchAttributeCliTypes).map(([name, type]) =>
    type === 'Bool'
      ? { key: defineSearchAttributeKey(name, SearchAttributeType.BOOL), value: false }
      : { key: defineSearchAttributeKey(name, SearchAttributeType.KEYWORD), value: 'readiness-probe' }) as SearchAttributePair[];
}

async function waitUntilUsable(address: string, namespace: string, exited: () => string | undefined): Promise<void> {
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  try {
    await waitFor(`namespace ${namespace} to be usable`, 60_000, async () => {
      if (exited()) return null;
      await client.workflowService.describeNamespace({ namespace });
      // Nothing polls this queue: the probe is started and terminated, never run.
      const handle = await client.workflow.start('birthgateReadinessProbe', {
        taskQueue: 'birthgate-readiness-probe',
        workflowId: `birthgate-readiness-probe:${randomBytes(6).toString('hex')}`,
        typedSearchAttributes: probeAttributes(),
      });
      await handle.terminate('readiness probe');
      return true;
    });
    const e = exited();
    if (e) throw new Error(e);
  } finally {
    await connection.close();
  }
}

/**
 * Everything for one server on a cluster we administer: build (or reuse), databases, start. With
 * `dropOnStop` the databases go with it (a throwaway server on a shared cluster: tests, benches).
 */
export async function startTemporalServerOn(o: {
  adminUrl: string;
  home: string;
  password: string;
  namespace: string;
  logFile: string;
  frontendPort?: number;
  databases?: TemporalDatabases;
  estateDatabase?: string;
  dropOnStop?: boolean;
  log?: (line: string) => void;
  buildTimeoutMs?: number;
  /** `host:port` for the server's own Prometheus metrics (the template's PROMETHEUS_ENDPOINT); off by default. */
  metricsEndpoint?: string;
}): Promise<RunningTemporalServer> {
  const build = await ensureTemporalServerBuild(o.home, o.log, { timeoutMs: o.buildTimeoutMs });
  const databases = o.databases ?? DEFAULT_TEMPORAL_DATABASES;
  const drop = async () => {
    if (!o.dropOnStop) return;
    await withClient(o.adminUrl, async (c) => {
      for (const db of [databases.persistence, databases.visibility]) {
        const ddl = await c.query<{ sql: string }>('SELECT format($q$DROP DATABASE IF EXISTS %I WITH (FORCE)$q$, $1::text) AS sql', [db]);
        await c.query(ddl.rows[0]!.sql);
      }
    });
  };
  try {
    await prepareTemporalDatabases({ adminUrl: o.adminUrl, password: o.password, databases, estateDatabase: o.estateDatabase, build, log: o.log });
    const u = new URL(o.adminUrl);
    const server = await startTemporalServer({
      build,
      pg: { host: u.hostname, port: Number(u.port || 5432), password: o.password },
      databases,
      frontendPort: o.frontendPort,
      namespace: o.namespace,
      logFile: o.logFile,
      metricsEndpoint: o.metricsEndpoint,
    });
    return {
      ...server,
      stop: async () => {
        await server.stop();
        await drop().catch(() => undefined);
      },
    };
  } catch (err) {
    await drop().catch(() => undefined);
    throw err;
  }
}

/** Two fresh database names for a throwaway server on a shared cluster. */
export function throwawayDatabases(prefix = 'bg_temporal'): TemporalDatabases {
  const id = randomBytes(4).toString('hex');
  return { persistence: `${prefix}_${id}`, visibility: `${prefix}_${id}_visibility` };
}

/** The superuser URL of the `postgres` database on the same server (DATABASE_URL names the estate's). */
export const maintenanceUrl = (url: string) => withDatabase(url, 'postgres');
