// KB-7D57 "Backup commands (run first)": before any step, the schema of birth_registry and
// dot_tools and the function fingerprints go to files under the run's report dir. The catalog read
// always works; pg_dump --schema-only is added when a pg_dump of the server's major version is on
// PATH (pg_dump refuses a newer server, and an older one is not a faithful dump), else skipped and said so.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { readSql } from '../db/sql-files.ts';

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
  pgDump: { used: boolean; detail: string };
  backup: CatalogBackup;
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

async function pgDumpMajor(): Promise<number | undefined> {
  try {
    const { stdout } = await run('pg_dump', ['--version'], { timeout: 10_000 });
    const m = /(\d+)(?:\.\d+)?/.exec(stdout.replace(/^[^)]*\)/, ''));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function tryPgDump(url: string | undefined, serverVersionNum: number, file: string, tables: readonly string[]): Promise<BackupResult['pgDump']> {
  if (!url) return { used: false, detail: 'no connection URL for pg_dump' };
  const major = await pgDumpMajor();
  const serverMajor = Math.floor(serverVersionNum / 10000);
  if (major === undefined) return { used: false, detail: 'pg_dump not on PATH' };
  if (major !== serverMajor) return { used: false, detail: `pg_dump ${major} does not match server major ${serverMajor}` };
  // The password travels in the environment, not on the command line (where `ps` would show it).
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  const args = ['--schema-only', '--no-owner', ...tables.flatMap((t) => ['-t', `public.${t}`]), '-f', file, u.toString()];
  try {
    await run('pg_dump', args, { timeout: 300_000, env: { ...process.env, PGPASSWORD: password } });
    return { used: true, detail: `pg_dump ${major} --schema-only` };
  } catch (err) {
    return { used: false, detail: `pg_dump failed: ${(err as Error).message.split('\n')[0]}` };
  }
}

/** Write the backup files into `dir` (created). Never throws for pg_dump; throws if the catalog read fails. */
export async function takeBackup(pool: pg.Pool, opts: { dir: string; databaseUrl?: string; tables?: readonly string[] }): Promise<BackupResult> {
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
  const dumpFile = path.join(opts.dir, 'pg_dump_schema_pre.sql');
  const url = opts.databaseUrl ?? (pool as unknown as { options?: { connectionString?: string } }).options?.connectionString;
  const pgDump = await tryPgDump(url, Number(version.rows[0]!.n), dumpFile, tables);
  if (pgDump.used) files.push(dumpFile);
  return { dir: opts.dir, files, pgDump, backup };
}
