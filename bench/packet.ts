// Apply-packet benchmarks (issue 3), same run:
//  (a) dot_tools insert under the permit gate + deferred finalize vs the entry state's insert path,
//      N single-statement transactions each, as a ratio (target ≤ 1.3×); measured entry → gated →
//      entry again (after rollback), so a drift of the machine shows as two different entry figures.
//      On the test world with N = 2000 and on the prod world with a smaller N: on prod the estate's
//      own fn_birth_gate dominates every insert (see the note in the report);
//  (b) step 2 (CREATE INDEX CONCURRENTLY) and step 3 (USING INDEX promotion) through the runner while
//      a writer inserts into birth_registry in a loop: the writer's longest stall, the promotion's
//      lock window (targets: no stall > 200 ms, promotion < 50 ms);
//  (c) rehearsal and full apply durations.
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../config/index.ts';
import { loadWorld } from '../fixtures/world.ts';
import { applyPacket, rollbackPacket } from '../packet/apply.ts';
import { applyStep, rollbackStep } from '../packet/step-runner.ts';
import { rehearse } from '../rehearsal/rehearse.ts';
import type { BenchContext, BenchDatabase, BenchReport } from './context.ts';

const N_TEST = Number(process.env.BIRTHGATE_BENCH_INSERTS ?? 2000);
const N_PROD = Number(process.env.BIRTHGATE_BENCH_PROD_INSERTS ?? 100);
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

/** (a) on one world: entry → apply → gated (+ issue-and-insert) → rollback → entry again. */
async function insertRatio(ctx: BenchContext, db: BenchDatabase, client: pg.Client, key: string, label: string, n: number): Promise<{ report: BenchReport; applyMs: number; rollbackMs: number }> {
  ctx.log(`packet (a) ${label}: ${n} entry-path inserts …`);
  const entry1 = await timed(n, entryInsert(client, `${key}-e1`));
  const t1 = performance.now();
  await applyPacket(db.pool, { ...approval });
  const applyMs = performance.now() - t1;
  ctx.log(`packet (a) ${label}: ${n} gated inserts …`);
  const issue = async (code: string) =>
    (await client.query<{ permit_id: string }>(`SELECT permit_id FROM fn_permit_issue($1, $2, 'dot_tools', 3600, 'bench', $1, NULL)`, [`bench:${code}`, code])).rows[0]!.permit_id;
  const insert = (permit: string) => client.query(`SELECT row_id FROM fn_admission_insert_dot_tools($1, '{"name": "bench gated", "_dot_origin": "bench"}'::jsonb)`, [permit]);
  const permits: string[] = [];
  for (let i = 0; i < n; i++) permits.push(await issue(`dot-bench-${key}-g-${i}`));
  const gated = await timed(n, (i) => insert(permits[i]!));
  const m = Math.min(n, 500);
  const both = await timed(m, async (i) => insert(await issue(`dot-bench-${key}-ig-${i}`)));
  // Back to the entry state: the bench rows and their births go first (step 7's rollback refuses
  // while a code is born in two collections; these are born in dot_tools only, but clean is clean).
  await client.query(`DELETE FROM dot_tools WHERE _dot_origin = 'bench'`);
  await client.query(`DELETE FROM birth_registry WHERE collection_name = 'dot_tools' AND entity_code LIKE 'dot-bench-%'`);
  const t2 = performance.now();
  await rollbackPacket(db.pool, { to: 0 });
  const rollbackMs = performance.now() - t2;
  ctx.log(`packet (a) ${label}: ${n} entry-path inserts again …`);
  const entry2 = await timed(n, entryInsert(client, `${key}-e2`));
  await client.query(`DELETE FROM dot_tools WHERE _dot_origin = 'bench'`);
  await client.query(`DELETE FROM birth_registry WHERE collection_name = 'dot_tools' AND entity_code LIKE 'dot-bench-%'`);

  const mean = (entry1.totalMs + entry2.totalMs) / 2 / n;
  const row = (path: string, t: { totalMs: number; p50: number; p95: number }, k: number) =>
    ({ path, n: k, total_ms: round(t.totalMs), per_insert_ms: round(t.totalMs / k), p50_ms: round(t.p50), p95_ms: round(t.p95), ratio: round(t.totalMs / k / mean) });
  return {
    applyMs,
    rollbackMs,
    report: {
      title: `packet (a) ${label}: dot_tools insert, permit gate + deferred finalize vs the entry path (single-statement transactions)`,
      rows: [row('entry (before apply)', entry1, n), row('permit gate + deferred finalize', gated, n), row('entry (after rollback)', entry2, n), row('issue permit + gated insert (2 txns)', both, m)],
      notes: ['ratio = per insert, against the mean of the two entry samples; target ≤ 1.3× for the gated insert (its permit issued beforehand, as the workflow does in its own activity)'],
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

export async function benchPacket(ctx: BenchContext): Promise<BenchReport[]> {
  const reports: BenchReport[] = [];
  for (const scale of ['test', 'prod'] as const) {
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
        reports.push((await insertRatio(ctx, db, client, 't', `test world (${w.births.toLocaleString('en-US')} births)`, N_TEST)).report);
        continue;
      }
      ctx.log('packet (c): rehearsal on the prod world …');
      const t1 = performance.now();
      const rehearsal = await rehearse(db.pool, { report: path.join(projectRoot, 'reports', 'rehearsal-prod-world') });
      const rehearsalFiles = rehearsal.files.map((f) => path.relative(projectRoot, f));
      const rehearsalMs = performance.now() - t1;
      reports.push(await onlineBuild(ctx, db));
      const prod = await insertRatio(ctx, db, client, 'p', `prod world (${w.births.toLocaleString('en-US')} births)`, N_PROD);
      prod.report.notes.push('on the prod world the estate\'s own fn_birth_gate (entry state, untouched by the packet) dominates both paths: see sql/apply/REQUEST-from-runner.md (collation "C" defeats the entity_code index in fn_pre_birth_check)');
      reports.push(prod.report);
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
