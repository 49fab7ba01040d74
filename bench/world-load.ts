// Benchmark: the prod-scale world load (fixtures/world.ts) beside a plain COPY of the same rows in
// the same run. The COPY baseline dumps every loaded table, then times COPY FROM STDIN of that text
// into identical bare tables (CREATE TABLE … (LIKE …): columns only, no indexes, no triggers) and,
// for reference, into tables with the same indexes (LIKE … INCLUDING ALL). One transaction each,
// like the load. Memory: node peak RSS, and the server backend's peak when the server is local.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { createPool, withClient, type Queryable } from '../db/pool.ts';
import { loadWorld } from '../fixtures/world.ts';
import type { BenchContext, BenchReport } from './context.ts';
import { watchMemory, type MemoryPeaks } from './memory-watch.ts';

const TAIL_PHASES = new Set(['baseline', 'orphans', 'phantoms', 'registry_changelog', 'fs inventory', 'analyze', 'done']);

type Measured = { label: string; rows: number; seconds: number; memory: MemoryPeaks };

async function backendPid(c: Queryable): Promise<number> {
  const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return rows[0]!.pid;
}

async function measureLoad(url: string, log: (l: string) => void): Promise<Measured> {
  const pool = createPool(url, { max: 1, applicationName: 'bench-world-load' });
  try {
    const pid = await backendPid(pool); // max 1: the load runs on this backend
    const mem = watchMemory(pid);
    let lastPhase = '';
    const started = performance.now();
    const summary = await loadWorld(pool, {
      scale: 'prod',
      onProgress: (p) => {
        const phase = p.phase.startsWith('births') ? 'births' : TAIL_PHASES.has(p.phase) ? p.phase : 'collection rows';
        if (phase !== lastPhase) log(`world load: ${(lastPhase = phase)}`);
      },
    });
    const seconds = (performance.now() - started) / 1000;
    return { label: 'world load --scale prod', rows: summary.rowsWritten, seconds, memory: mem.stop() };
  } finally {
    await pool.end();
  }
}

/** The tables the load filled, with their row counts. */
async function loadedTables(c: pg.ClientBase): Promise<Array<{ name: string; rows: number }>> {
  const { rows } = await c.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c
      WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY c.relname`,
  );
  const out: Array<{ name: string; rows: number }> = [];
  for (const { name } of rows) {
    const n = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(name)}`);
    if ((n.rows[0]?.n ?? 0) > 0) out.push({ name, rows: n.rows[0]!.n });
  }
  return out;
}

async function dump(c: pg.ClientBase, tables: Array<{ name: string }>, dir: string): Promise<void> {
  for (const t of tables) {
    const source = c.query(copyStreams.to(`COPY public.${pg.escapeIdentifier(t.name)} TO STDOUT`));
    await pipeline(source, fs.createWriteStream(path.join(dir, `${t.name}.copy`)));
  }
}

async function measureCopy(
  url: string,
  tables: Array<{ name: string; rows: number }>,
  dir: string,
  variant: { label: string; schema: string; like: string },
): Promise<Measured> {
  return withClient(url, async (c) => {
    await c.query(`CREATE SCHEMA ${variant.schema}`);
    for (const t of tables) {
      const id = pg.escapeIdentifier(t.name);
      await c.query(`CREATE TABLE ${variant.schema}.${id} (LIKE public.${id} ${variant.like})`);
    }
    const mem = watchMemory(await backendPid(c));
    const started = performance.now();
    await c.query('BEGIN');
    for (const t of tables) {
      const sink = c.query(copyStreams.from(`COPY ${variant.schema}.${pg.escapeIdentifier(t.name)} FROM STDIN`));
      await pipeline(fs.createReadStream(path.join(dir, `${t.name}.copy`)), sink);
    }
    await c.query('COMMIT');
    const seconds = (performance.now() - started) / 1000;
    return { label: variant.label, rows: tables.reduce((n, t) => n + t.rows, 0), seconds, memory: mem.stop() };
  });
}

const mib = (x: number | null) => (x === null ? 'n/a' : Math.round(x));

export async function benchWorldLoad(ctx: BenchContext): Promise<BenchReport[]> {
  const db = await ctx.freshDatabase('world_load');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'birthgate-bench-copy-'));
  try {
    const load = await measureLoad(db.url, ctx.log);
    ctx.log(`world load: ${load.rows} rows in ${load.seconds.toFixed(1)} s; dumping the same rows for COPY …`);
    const tables = await withClient(db.url, async (c) => {
      const t = await loadedTables(c);
      await dump(c, t, dir);
      return t;
    });
    const bare = await measureCopy(db.url, tables, dir, { label: 'COPY FROM STDIN, bare tables', schema: 'bench_copy_bare', like: '' });
    ctx.log(`COPY bare: ${bare.rows} rows in ${bare.seconds.toFixed(1)} s`);
    const indexed = await measureCopy(db.url, tables, dir, {
      label: 'COPY FROM STDIN, same indexes',
      schema: 'bench_copy_indexed',
      like: 'INCLUDING ALL',
    });
    ctx.log(`COPY indexed: ${indexed.rows} rows in ${indexed.seconds.toFixed(1)} s`);
    const bareRate = bare.rows / bare.seconds;
    const row = (m: Measured) => ({
      method: m.label,
      rows: m.rows,
      seconds: Number(m.seconds.toFixed(2)),
      'rows/s': Math.round(m.rows / m.seconds),
      'time vs COPY bare': Number((m.seconds / bare.seconds).toFixed(2)),
      'rate vs COPY bare': Number((m.rows / m.seconds / bareRate).toFixed(2)),
      'node peak RSS MiB': mib(m.memory.nodeRssMiB),
      'backend peak (VmHWM) MiB': mib(m.memory.backendHwmMiB),
      'backend private peak MiB': mib(m.memory.backendAnonMiB),
    });
    return [
      {
        title: 'World load, prod scale (1,126,728 births) vs plain COPY of the same rows',
        rows: [row(load), row(bare), row(indexed)],
        notes: [
          'world load = install the baseline + generate every row server-side (generate_series) + birth them set-based + ANALYZE, one transaction',
          `COPY rows = every non-empty table after the load (${tables.length} tables), dumped with COPY TO STDOUT and replayed with COPY FROM STDIN; dump time excluded`,
          'VmHWM counts the shared buffers a backend touched; "private" is its sampled peak RssAnon. n/a = server not on this machine',
        ],
      },
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await db.dispose();
  }
}
