// Apply-packet benchmarks (issue 3), same run:
//  (a) dot_tools insert under the permit gate + deferred finalize vs the entry state's insert path,
//      N single-statement transactions per sample, as a ratio (target ≤ 1.3×); samples alternate
//      entry, gated, entry, … (apply and rollback between them) on the same world, so a shared
//      machine's drift lands on both paths. Test world N = 2000 × 3 rounds; prod world a smaller N:
//      there the estate's own fn_birth_gate dominates every insert (see the note in the report);
//  (b) step 2 (CREATE INDEX CONCURRENTLY) and step 3 (USING INDEX promotion) through the runner while
//      a writer inserts into birth_registry in a loop: the writer's longest stall, the promotion's
//      lock window (targets: no stall > 200 ms, promotion < 50 ms);
//  (c) rehearsal and full apply durations.
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../config/index.ts';
import { readSql } from '../db/sql-files.ts';
import { loadWorld } from '../fixtures/world.ts';
import { applyPacket, rollbackPacket } from '../packet/apply.ts';
import { applyStep, rollbackStep } from '../packet/step-runner.ts';
import { rehearse } from '../rehearsal/rehearse.ts';
import type { BenchContext, BenchDatabase, BenchReport } from './context.ts';

const N_TEST = Number(process.env.BIRTHGATE_BENCH_INSERTS ?? 2000);
/** BIRTHGATE_BENCH_COMPARE_PACKET=<dir of another sql/apply>: (a) also measures that packet in every round. */
const COMPARE = process.env.BIRTHGATE_BENCH_COMPARE_PACKET;
const N_PROD = Number(process.env.BIRTHGATE_BENCH_PROD_INSERTS ?? 100);
// BIRTHGATE_BENCH_PACKET_ONLY=insert: only (a) on the test world (the prod-world runs take minutes);
// BIRTHGATE_BENCH_PACKET_ONLY=drift: only (d), the drift tick, on the prod world.
const ONLY = process.env.BIRTHGATE_BENCH_PACKET_ONLY;
if (ONLY !== undefined && ONLY !== 'insert' && ONLY !== 'drift') throw new Error(`BIRTHGATE_BENCH_PACKET_ONLY=${ONLY}: only "insert" and "drift" are known`);
const approval = { owner: 'bench-owner', approvalId: 'BENCH-APPROVAL' };
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] ?? 0;
const round = (n: number) => Math.round(n * 100) / 100;

async function timed(n: number, one: (i: number) => Promise<unknown>): Promise<{ totalMs: number; p50: number; p95: number }> {
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await one(i);
    lat.push(performance.now() - t);
  }
  return { totalMs: performance.now() - t0, p50: pct(lat, 50), p95: pct(lat, 95) };
}

/** The entry path: a plain insert, its BEFORE gate advisory, its AFTER births (KB-2590 §5). */
function entryInsert(c: pg.Client, tag: string) {
  return (i: number) => c.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ($1, 'bench entry', 'bench')`, [`dot-bench-${tag}-${i}`]);
}

/** A writer inserting into birth_registry until stopped; every insert's latency, stamped. */
function startWriter(url: string) {
  const c = new pg.Client({ connectionString: url, application_name: 'bench-writer' });
  const samples: Array<{ at: number; ms: number }> = [];
  let stop = false;
  const done = (async () => {
    await c.connect();
    for (let i = 0; !stop; i++) {
      const t = performance.now();
      await c.query(`INSERT INTO birth_registry (entity_code, collection_name, birth_method) VALUES ($1, 'dot_tools', 'bench-writer')`, [`BENCH-W-${i}`]);
      samples.push({ at: t, ms: performance.now() - t });
    }
    await c.query(`DELETE FROM birth_registry WHERE birth_method = 'bench-writer'`);
    await c.end();
  })();
  return { samples, stop: async () => { stop = true; await done; } };
}

type Sample = { totalMs: number; p50: number; p95: number };

/**
 * (a) on one world, ABAB…A: entry, apply, gated, rollback, …, entry. The figures of other processes on
 * a shared machine move between samples; the ratio takes the median sample of each path.
 */
async function insertRatio(ctx: BenchContext, db: BenchDatabase, client: pg.Client, key: string, label: string, n: number, rounds: number): Promise<{ report: BenchReport; applyMs: number; rollbackMs: number }> {
  const issue = async (code: string) =>
    (await client.query<{ permit_id: string }>(`SELECT permit_id FROM fn_permit_issue($1, $2, 'dot_tools', 3600, 'bench', $1, NULL)`, [`bench:${code}`, code])).rows[0]!.permit_id;
  const insert = (permit: string) => client.query(`SELECT row_id FROM fn_admission_insert_dot_tools($1, '{"name": "bench gated", "_dot_origin": "bench"}'::jsonb)`, [permit]);
  // The bench rows and their births go before each rollback (they are born in dot_tools only).
  const cleanup = async () => {
    await client.query(`DELETE FROM dot_tools WHERE _dot_origin = 'bench'`);
    await client.query(`DELETE FROM birth_registry WHERE collection_name = 'dot_tools' AND entity_code LIKE 'dot-bench-%'`);
  };
  // The world load leaves work behind (autovacuum of fresh tables, dirty buffers): done now, with a
  // warm-up, so it does not land on the first sample.
  await client.query('VACUUM (ANALYZE)');
  await client.query('CHECKPOINT');
  await timed(Math.min(200, n), entryInsert(client, `${key}-w`));
  await cleanup();

  const entry: Sample[] = [];
  const gated: Sample[] = [];
  const compared: Sample[] = [];
  let both: Sample | undefined;
  let applyMs = 0;
  let rollbackMs = 0;
  const m = Math.min(n, 500);
  for (let r = 0; r < rounds; r++) {
    ctx.log(`packet (a) ${label}: round ${r + 1}/${rounds}, ${n} entry-path then ${n} gated inserts …`);
    entry.push(await timed(n, entryInsert(client, `${key}-e${r}`)));
    await cleanup();
    const t1 = performance.now();
    await applyPacket(db.pool, { ...approval });
    applyMs ||= performance.now() - t1;
    const permits: string[] = [];
    for (let i = 0; i < n; i++) permits.push(await issue(`dot-bench-${key}-g${r}-${i}`));
    gated.push(await timed(n, (i) => insert(permits[i]!)));
    if (r === rounds - 1) both = await timed(m, async (i) => insert(await issue(`dot-bench-${key}-ig-${i}`)));
    await cleanup();
    const t2 = performance.now();
    await rollbackPacket(db.pool, { to: 0 });
    rollbackMs ||= performance.now() - t2;
    if (COMPARE) {
      // The same inserts under another packet (e.g. a checkout of an earlier commit), on the same
      // world, in the same round: a before/after comparison measured in one run.
      await applyPacket(db.pool, { ...approval, stepsRoot: COMPARE });
      const cpermits: string[] = [];
      for (let i = 0; i < n; i++) cpermits.push(await issue(`dot-bench-${key}-c${r}-${i}`));
      compared.push(await timed(n, (i) => insert(cpermits[i]!)));
      await cleanup();
      await rollbackPacket(db.pool, { to: 0, stepsRoot: COMPARE });
    }
  }
  entry.push(await timed(n, entryInsert(client, `${key}-e${rounds}`)));
  await cleanup();

  const median = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    const h = Math.floor(v.length / 2);
    return v.length % 2 ? v[h]! : (v[h - 1]! + v[h]!) / 2;
  };
  const entryPer = median(entry.map((x) => x.totalMs / n));
  const gatedPer = median(gated.map((x) => x.totalMs / n));
  const entryP50 = median(entry.map((x) => x.p50));
  const row = (path: string, t: Sample, k: number) =>
    ({ path, n: k, total_ms: round(t.totalMs), per_insert_ms: round(t.totalMs / k), p50_ms: round(t.p50), p95_ms: round(t.p95), ratio: round(t.totalMs / k / entryPer) });
  const rows: Array<Record<string, string | number>> = [];
  entry.forEach((t, i) => {
    rows.push(row(`entry, sample ${i + 1}`, t, n));
    if (gated[i]) rows.push(row(`permit gate + deferred finalize, sample ${i + 1}`, gated[i]!, n));
    if (compared[i]) rows.push(row(`compared packet (${path.basename(path.dirname(path.dirname(COMPARE!)))}), sample ${i + 1}`, compared[i]!, n));
  });
  if (compared.length) {
    const cPer = median(compared.map((x) => x.totalMs / n));
    rows.push({ path: 'compared / entry, median samples', n: rounds, total_ms: '', per_insert_ms: round(cPer), p50_ms: round(median(compared.map((x) => x.p50))), p95_ms: '', ratio: round(cPer / entryPer) });
    rows.push({ path: 'this packet − compared, per insert (ms)', n: rounds, total_ms: '', per_insert_ms: round(gatedPer - cPer), p50_ms: '', p95_ms: '', ratio: round(gatedPer / cPer) });
  }
  if (both) rows.push(row('issue permit + gated insert (2 txns)', both, m));
  rows.push({ path: 'gated / entry, median samples', n: rounds, total_ms: '', per_insert_ms: round(gatedPer), p50_ms: round(median(gated.map((x) => x.p50))), p95_ms: '', ratio: round(gatedPer / entryPer) });
  return {
    applyMs,
    rollbackMs,
    report: {
      title: `packet (a) ${label}: dot_tools insert, permit gate + deferred finalize vs the entry path (single-statement transactions)`,
      rows,
      notes: [
        `gated / entry = ${round(gatedPer / entryPer)}× per insert (median samples; p50 latency ${round(median(gated.map((x) => x.p50)) / entryP50)}×); target ≤ 1.3×: ${gatedPer / entryPer <= 1.3 ? 'met' : 'MISSED'}`,
        'ratio column = per insert against the median entry sample; the gated insert\'s permit is issued beforehand, as the workflow does in its own activity',
      ],
    },
  };
}

/** (b) the online composite build and its promotion, through the runner, under a birth_registry writer. */
async function onlineBuild(ctx: BenchContext, db: BenchDatabase): Promise<BenchReport> {
  ctx.log('packet (b): composite index CONCURRENTLY + promotion under a writer …');
  await applyStep(db.pool, 1);
  const writer = startWriter(db.url);
  await new Promise((r) => setTimeout(r, 500)); // a baseline of writer latencies
  const buildStart = performance.now();
  const build = await applyStep(db.pool, 2);
  const buildEnd = performance.now();
  let promotionMs = 0;
  await applyStep(db.pool, 3, { onEvent: (e) => { if (e.type === 'attempt' && e.ok) promotionMs = e.ms; } });
  const promoEnd = performance.now();
  await new Promise((r) => setTimeout(r, 300));
  await writer.stop();
  for (const s of [3, 2, 1]) await rollbackStep(db.pool, s);
  const during = (a: number, b: number) => writer.samples.filter((x) => x.at + x.ms >= a && x.at <= b).map((x) => x.ms);
  const phases: Array<[string, number[]]> = [
    ['writer before the build', writer.samples.filter((x) => x.at < buildStart).map((x) => x.ms)],
    [`step 2 build CONCURRENTLY: ${round(buildEnd - buildStart)} ms, ${build.attempts} attempt(s)`, during(buildStart, buildEnd)],
    [`step 3 promotion: lock window ${round(promotionMs)} ms`, during(buildEnd, promoEnd)],
  ];
  const longest = Math.max(0, ...writer.samples.map((x) => x.ms));
  return {
    title: 'packet (b): composite index CONCURRENTLY + USING INDEX promotion under a birth_registry writer (prod world)',
    rows: phases.map(([phase, xs]) => ({ phase, inserts: xs.length, p50_ms: round(pct(xs, 50)), max_stall_ms: round(Math.max(0, ...xs)) })),
    notes: [
      `writer's longest stall ${round(longest)} ms (target ≤ 200 ms: ${longest <= 200 ? 'met' : 'MISSED'}); promotion lock window ${round(promotionMs)} ms (target < 50 ms: ${promotionMs < 50 ? 'met' : 'MISSED'})`,
      'lock window = the whole step-3 transaction (BEGIN, SET LOCALs, ALTER … USING INDEX, COMMIT): the ACCESS EXCLUSIVE lock is held from the ALTER to the COMMIT, inside it',
    ],
  };
}

/**
 * The drift tick (issue 7: catalog fingerprint and the data-level invariants together, target < 50 ms
 * on the prod-scale world), with admitted rows in place so the invariants have work, beside the
 * runner's catalog fingerprint probe (one read of the same catalog) as the baseline of the same run.
 */
async function driftTick(ctx: BenchContext, db: BenchDatabase, client: pg.Client, label: string): Promise<BenchReport> {
  await applyPacket(db.pool, { ...approval });
  for (let i = 0; i < 200; i++) {
    const code = `dot-bench-drift-${i}`;
    const { rows } = await client.query<{ permit_id: string }>(`SELECT permit_id FROM fn_permit_issue($1, $2, 'dot_tools', 3600, 'bench', $1, NULL)`, [`bench:${code}`, code]);
    await client.query(`SELECT row_id FROM fn_admission_insert_dot_tools($1, '{"_dot_origin": "bench"}'::jsonb)`, [rows[0]!.permit_id]);
  }
  await client.query('VACUUM (ANALYZE)');
  const fingerprintSql = readSql('probes/catalog_fingerprint.sql');
  const n = 30;
  const sample = async (sql: string) => {
    for (let i = 0; i < 3; i++) await client.query(sql); // warm
    return timed(n, () => client.query(sql));
  };
  ctx.log(`packet (d) ${label}: ${n} drift ticks and ${n} catalog fingerprints …`);
  const fp = await sample(fingerprintSql);
  const tick = await sample('SELECT * FROM fn_drift_tick()');
  const findings = (await client.query('SELECT * FROM fn_drift_tick()')).rowCount;
  await client.query(`DELETE FROM dot_tools WHERE _dot_origin = 'bench'`);
  await client.query(`DELETE FROM birth_registry WHERE collection_name = 'dot_tools' AND entity_code LIKE 'dot-bench-%'`);
  await rollbackPacket(db.pool, { to: 0 });
  const row = (what: string, t: Sample) => ({ what, n, p50_ms: round(t.p50), p95_ms: round(t.p95), ratio: round(t.p50 / fp.p50) });
  return {
    title: `packet (d) ${label}: drift tick — catalog fingerprint and data-level invariants (200 admitted rows in place)`,
    rows: [row('catalog fingerprint probe (baseline)', fp), row('fn_drift_tick(): every admission dim, guard refreshed', tick)],
    notes: [`drift tick p50 ${round(tick.p50)} ms; target < 50 ms: ${tick.p50 < 50 ? 'met' : 'MISSED'}; findings on a clean estate: ${findings}`],
  };
}

export async function benchPacket(ctx: BenchContext): Promise<BenchReport[]> {
  const reports: BenchReport[] = [];
  for (const scale of ONLY === 'insert' ? (['test'] as const) : ONLY === 'drift' ? (['prod'] as const) : (['test', 'prod'] as const)) {
    const db = await ctx.freshDatabase(`packet_${scale}`);
    const client = new pg.Client({ connectionString: db.url, application_name: 'bench-inserts' });
    try {
      ctx.log(`packet: loading the ${scale}-scale world …`);
      const t0 = performance.now();
      const w = await loadWorld(db.pool, { scale });
      const loadMs = performance.now() - t0;
      await client.connect();
      client.on('notice', () => undefined); // fn_birth_gate warns on every kebab code (KB-2590 §4)
      if (scale === 'test') {
        reports.push((await insertRatio(ctx, db, client, 't', `test world (${w.births.toLocaleString('en-US')} births)`, N_TEST, 3)).report);
        continue;
      }
      if (ONLY === 'drift') {
        reports.push(await driftTick(ctx, db, client, `prod world (${w.births.toLocaleString('en-US')} births)`));
        continue;
      }
      ctx.log('packet (c): rehearsal on the prod world …');
      const t1 = performance.now();
      const rehearsal = await rehearse(db.pool, { report: path.join(projectRoot, 'reports', 'rehearsal-prod-world') });
      const rehearsalFiles = rehearsal.files.map((f) => path.relative(projectRoot, f));
      const rehearsalMs = performance.now() - t1;
      reports.push(await onlineBuild(ctx, db));
      const prod = await insertRatio(ctx, db, client, 'p', `prod world (${w.births.toLocaleString('en-US')} births)`, N_PROD, 1);
      reports.push(prod.report);
      reports.push(await driftTick(ctx, db, client, `prod world (${w.births.toLocaleString('en-US')} births)`));
      reports.push({
        title: 'packet (c): durations on the prod world',
        rows: [
          { what: 'world load (fixture generator)', ms: Math.round(loadMs), locks_held_ms: '' },
          { what: `rehearsal: one BEGIN … ROLLBACK, ${rehearsal.status}, ${rehearsal.plan.filter((p) => p.ok).length}/${rehearsal.plan.length} plan lines`, ms: Math.round(rehearsalMs), locks_held_ms: rehearsal.writeBlockingMs },
          { what: 'rehearsal: the non-concurrent index build inside it', ms: rehearsal.composite.lockWindow.indexBuild?.ms ?? 0, locks_held_ms: '' },
          { what: 'rehearsal: the USING INDEX promotion inside it', ms: rehearsal.composite.lockWindow.promotion?.ms ?? 0, locks_held_ms: '' },
          { what: 'full apply, every step (with approval), backup and drift check included', ms: Math.round(prod.applyMs), locks_held_ms: '' },
          { what: 'rollback to 0', ms: Math.round(prod.rollbackMs), locks_held_ms: '' },
        ],
        notes: ['locks_held_ms: writers blocked by the rehearsal — from its index build (SHARE, then ACCESS EXCLUSIVE) to its ROLLBACK; run it off-peak', `rehearsal report: ${rehearsalFiles.join(', ')}`],
      });
    } finally {
      await client.end().catch(() => undefined);
      await db.dispose();
    }
  }
  return reports;
}
