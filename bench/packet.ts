// Apply-packet benchmarks (issue 3), same run:
//  (a) dot_tools insert under the permit gate + deferred finalize vs the entry state's insert path,
//      N single-statement transactions per sample, as a ratio (target ≤ 1.3×); samples alternate
//      entry, gated, entry, … (apply and rollback between them) on the same world, so a shared
//      machine's drift lands on both paths. Test world N = 2000 × 3 rounds; prod world a smaller N:
//      there the estate's own fn_birth_gate dominates every insert (see the note in the report);
//  (b) step 2 (CREATE INDEX CONCURRENTLY) and step 3 (USING INDEX promotion) through the runner while
//      a writer inserts into birth_registry in a loop: the writer's longest stall, the promotion's
//      lock window (targets: no stall > 200 ms, promotion < 50 ms);
//  (c) the rehearsal on the prod world while the same writer inserts (issue 9 item 6: the rehearsal runs
//      on a clone, the live tables see ACCESS SHARE only): the writer's longest stall, by phase and by what
//      it waited on, beside (b)'s (target ≤ 200 ms) and beside the writer alone for as long; whether any
//      session waited on the rehearsal at all; then the rehearsal, clone and full apply durations.
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../config/index.ts';
import { readSql } from '../db/sql-files.ts';
import { loadWorld } from '../fixtures/world.ts';
import { applyPacket, rollbackPacket } from '../packet/apply.ts';
import { applyStep, rollbackStep } from '../packet/step-runner.ts';
import { rehearse } from '../rehearsal/rehearse.ts';
import type { RehearsalReport } from '../rehearsal/report.ts';
import type { BenchContext, BenchDatabase, BenchReport } from './context.ts';

const N_TEST = Number(process.env.BIRTHGATE_BENCH_INSERTS ?? 2000);
/** BIRTHGATE_BENCH_COMPARE_PACKET=<dir of another sql/apply>: (a) also measures that packet in every round. */
const COMPARE = process.env.BIRTHGATE_BENCH_COMPARE_PACKET;
const N_PROD = Number(process.env.BIRTHGATE_BENCH_PROD_INSERTS ?? 100);
/**
 * (c): after the rehearsal the writer runs alone for as long as the rehearsal took (at most this many
 * ms): the machine's own stalls over a window as long, what the rehearsal's figure is read against.
 */
const BASELINE_MAX_MS = Number(process.env.BIRTHGATE_BENCH_REHEARSAL_BASELINE_MS ?? 180_000);
// BIRTHGATE_BENCH_PACKET_ONLY=insert: only (a) on the test world (the prod-world runs take minutes);
// BIRTHGATE_BENCH_PACKET_ONLY=drift: only (d), the drift tick, on the prod world;
// BIRTHGATE_BENCH_PACKET_ONLY=rehearsal: only (c)'s rehearsal under the writer and (b), side by side, on the prod world.
const ONLY = process.env.BIRTHGATE_BENCH_PACKET_ONLY;
if (ONLY !== undefined && ONLY !== 'insert' && ONLY !== 'drift' && ONLY !== 'rehearsal') {
  throw new Error(`BIRTHGATE_BENCH_PACKET_ONLY=${ONLY}: only "insert", "drift" and "rehearsal" are known`);
}
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
  let pid: number | undefined;
  const done = (async () => {
    await c.connect();
    pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    for (let i = 0; !stop; i++) {
      const t = performance.now();
      await c.query(`INSERT INTO birth_registry (entity_code, collection_name, birth_method) VALUES ($1, 'dot_tools', 'bench-writer')`, [`BENCH-W-${i}`]);
      samples.push({ at: t, ms: performance.now() - t });
    }
    await c.query(`DELETE FROM birth_registry WHERE birth_method = 'bench-writer'`);
    await c.end();
  })();
  return { samples, pid: () => pid, stop: async () => { stop = true; await done; } };
}

/**
 * What the writer waited on, sampled every 5 ms from another session (pg_stat_activity): a stall is a
 * lock wait only if a sample inside it says Lock; IO (WALSync: its commit's fsync behind other writes),
 * LWLock, or nothing at all (on the CPU queue of a busy machine) are not the rehearsal's locks.
 */
function watchWaits(url: string, pid: () => number | undefined) {
  const c = new pg.Client({ connectionString: url, application_name: 'bench-wait-watcher' });
  const events: Array<{ at: number; type: string; event: string }> = [];
  let stop = false;
  const done = (async () => {
    await c.connect();
    while (!stop) {
      const p = pid();
      if (p !== undefined) {
        const r = await c.query<{ t: string | null; e: string | null }>('SELECT wait_event_type AS t, wait_event AS e FROM pg_stat_activity WHERE pid = $1', [p]);
        events.push({ at: performance.now(), type: r.rows[0]?.t ?? '', event: r.rows[0]?.e ?? '' });
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await c.end();
  })();
  /** The class of a stall: Lock > IO > LWLock > CPU/other (ClientRead: between statements, ignored). */
  const classify = (x: { at: number; ms: number }) => {
    const seen = new Set(events.filter((e) => e.at >= x.at && e.at <= x.at + x.ms && e.type !== 'Client').map((e) => e.type));
    return seen.has('Lock') ? 'Lock' : seen.has('IO') ? 'IO' : seen.has('LWLock') ? 'LWLock' : 'CPU/other';
  };
  return { events, classify, stop: async () => { stop = true; await done; } };
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
async function onlineBuild(ctx: BenchContext, db: BenchDatabase): Promise<{ report: BenchReport; longestMs: number }> {
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
  return { longestMs: longest, report: {
    title: 'packet (b): composite index CONCURRENTLY + USING INDEX promotion under a birth_registry writer (prod world)',
    rows: phases.map(([phase, xs]) => ({ phase, inserts: xs.length, p50_ms: round(pct(xs, 50)), max_stall_ms: round(Math.max(0, ...xs)) })),
    notes: [
      `writer's longest stall ${round(longest)} ms (target ≤ 200 ms: ${longest <= 200 ? 'met' : 'MISSED'}); promotion lock window ${round(promotionMs)} ms (target < 50 ms: ${promotionMs < 50 ? 'met' : 'MISSED'})`,
      'lock window = the whole step-3 transaction (BEGIN, SET LOCALs, ALTER … USING INDEX, COMMIT): the ACCESS EXCLUSIVE lock is held from the ALTER to the COMMIT, inside it',
    ],
  } };
}

/**
 * (c) the whole rehearsal on the prod world while the (b) writer inserts into birth_registry. The
 * phases are stamped from the rehearsal's own progress lines: the clone built and proven, the steps,
 * the plan. A stall here is the machine's (CPU, I/O) unless a session waited on the rehearsal's backend:
 * the report says whether any did (pg_blocking_pids, sampled), and the strongest lock on a live object.
 */
async function rehearsalUnderWriter(ctx: BenchContext, db: BenchDatabase): Promise<{ report: BenchReport; longestMs: number; lockMs: number; baselineMs: number; rehearsal: RehearsalReport & { files: string[] }; ms: number }> {
  ctx.log('packet (c): the rehearsal on the prod world under a birth_registry writer, then the writer alone as long …');
  const writer = startWriter(db.url);
  const waits = watchWaits(db.url, writer.pid);
  await new Promise((r) => setTimeout(r, 3000)); // warm-up, not counted
  const marks: Array<[string, number]> = [];
  const start = performance.now();
  const rehearsal = await rehearse(db.pool, {
    report: path.join(projectRoot, 'reports', 'rehearsal-prod-world'),
    onProgress: (line) => {
      const at = performance.now();
      if (/^clone equals/.test(line)) marks.push(['clone', at]);
      else if (/^plan /.test(line) && !marks.some(([k]) => k === 'steps')) marks.push(['steps', at]);
    },
  });
  const end = performance.now();
  // The same writer alone, for a window as long as the rehearsal's (stalls grow with the window).
  const alone = Math.min(end - start, BASELINE_MAX_MS);
  ctx.log(`packet (c): the writer alone for ${Math.round(alone)} ms …`);
  await new Promise((r) => setTimeout(r, 300 + alone));
  const aloneEnd = performance.now();
  await writer.stop();
  await waits.stop();
  const at = (k: string, fallback: number) => marks.find(([m]) => m === k)?.[1] ?? fallback;
  const cloneEnd = at('clone', end);
  const stepsEnd = at('steps', end);
  const during = (a: number, b: number) => writer.samples.filter((x) => x.at + x.ms >= a && x.at <= b).map((x) => x.ms);
  const live = rehearsal.liveLocks;
  const strongest = live.objects[0];
  const c = rehearsal.clone.summary;
  const phases: Array<[string, number[]]> = [
    [`clone: ${c ? `${c.tables} tables, ${c.rows.toLocaleString('en-US')} rows, ${c.indexes} indexes` : 'not built'} + fingerprints: ${round(cloneEnd - start)} ms`, during(start, cloneEnd)],
    [`steps 1–18 on the clone (composite build ${rehearsal.composite.lockWindow.indexBuild?.ms ?? '?'} ms, promotion ${rehearsal.composite.lockWindow.promotion?.ms ?? '?'} ms): ${round(stepsEnd - cloneEnd)} ms`, during(cloneEnd, stepsEnd)],
    [`test plan on the clone, ROLLBACK, exit proof: ${round(end - stepsEnd)} ms`, during(stepsEnd, end)],
    [`the writer alone just after, as long (the machine): ${round(aloneEnd - end - 300)} ms`, during(end + 300, aloneEnd)],
  ];
  const inside = during(start, end);
  const longest = Math.max(0, ...inside);
  // Every stall over 50 ms, by what the writer was waiting on: during the rehearsal, and alone.
  const byClass = (a: number, b: number) => {
    const m = new Map<string, number[]>();
    for (const x of writer.samples.filter((y) => y.at + y.ms >= a && y.at <= b && y.ms > 50)) m.set(waits.classify(x), [...(m.get(waits.classify(x)) ?? []), x.ms]);
    return m;
  };
  const classes = (m: Map<string, number[]>) => [...m].map(([k, xs]) => `${k} ${xs.length} (longest ${round(Math.max(...xs))} ms)`).join(', ') || 'none';
  const inRehearsal = byClass(start, end);
  const lockStall = Math.max(0, ...(inRehearsal.get('Lock') ?? []));
  const baseline = Math.max(0, ...during(end + 300, aloneEnd));
  return {
    longestMs: longest,
    lockMs: lockStall,
    baselineMs: baseline,
    ms: end - start,
    rehearsal,
    report: {
      title: 'packet (c): the rehearsal (clone inside BEGIN … ROLLBACK) under a birth_registry writer (prod world)',
      rows: phases.map(([phase, xs]) => ({ phase, inserts: xs.length, p50_ms: round(pct(xs, 50)), p99_ms: round(pct(xs, 99)), max_stall_ms: round(Math.max(0, ...xs)) })),
      notes: [
        `writer's longest stall during the rehearsal ${round(longest)} ms (target ≤ 200 ms: ${longest <= 200 ? 'met' : 'MISSED'}); alone just after, as long: ${round(baseline)} ms; rehearsal ${rehearsal.status}, ${round(end - start)} ms`,
        `stalls > 50 ms by what the writer waited on (pg_stat_activity every 5 ms) — during the rehearsal: ${classes(inRehearsal)}; alone: ${classes(byClass(end + 300, aloneEnd))}; longest waiting on a lock during the rehearsal: ${round(lockStall)} ms`,
        `sessions that waited on the rehearsal's backend: ${live.blocked.length ? live.blocked.map((b) => `pid ${b.pid} ${b.application} (${b.samples} samples)`).join(', ') : 'none'} (${live.samples} samples every ${live.sampleMs} ms); strongest lock on a live object: ${strongest ? `${strongest.mode} (${live.objects.filter((o) => o.mode === strongest.mode).length} objects)` : 'none'}; ${live.stronger.length} live objects above ACCESS SHARE`,
        'a stall without a session waiting on the rehearsal is the shared machine (2 cores: the clone\'s copy, index builds and the plan\'s scans compete for CPU and I/O), not a lock',
      ],
    },
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

/** The issue 9 item 6 figure: a writer's longest stall during the rehearsal, beside the online build's. */
function stallsSideBySide(onlineMs: number, under: { longestMs: number; lockMs: number; baselineMs: number; rehearsal: RehearsalReport }): BenchReport {
  const r = under.rehearsal;
  const rehearsalMs = under.longestMs;
  return {
    title: 'packet (b) + (c): a birth_registry writer\'s longest stall (prod world, same writer, same run)',
    rows: [
      { during: 'online index build: CONCURRENTLY + USING INDEX promotion, through the runner', max_stall_ms: round(onlineMs), target: '≤ 200 ms', met: onlineMs <= 200 ? 'yes' : 'NO' },
      { during: 'the rehearsal: whole packet + test plan on a clone inside BEGIN … ROLLBACK', max_stall_ms: round(rehearsalMs), target: '≤ 200 ms', met: rehearsalMs <= 200 ? 'yes' : 'NO' },
      { during: '  of which waiting on a lock', max_stall_ms: round(under.lockMs), target: '≤ 200 ms', met: under.lockMs <= 200 ? 'yes' : 'NO' },
      { during: 'the writer alone just after the rehearsal, as long (the machine)', max_stall_ms: round(under.baselineMs), target: '', met: '' },
    ],
    notes: [`rehearsal: live objects ${r.liveLocks.verdict === 'ACCESS_SHARE_AT_MOST' ? 'held in ACCESS SHARE at most' : `held above ACCESS SHARE: ${r.liveLocks.stronger.map((x) => `${x.object} ${x.mode}`).join(', ')}`}; sessions that waited on it: ${r.liveLocks.blocked.length}`],
  };
}

export async function benchPacket(ctx: BenchContext): Promise<BenchReport[]> {
  const reports: BenchReport[] = [];
  const scales = ONLY === 'insert' ? (['test'] as const) : ONLY === 'drift' || ONLY === 'rehearsal' ? (['prod'] as const) : (['test', 'prod'] as const);
  for (const scale of scales) {
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
      const under = await rehearsalUnderWriter(ctx, db);
      const { rehearsal } = under;
      const rehearsalFiles = rehearsal.files.map((f) => path.relative(projectRoot, f));
      const rehearsalMs = under.ms;
      const online = await onlineBuild(ctx, db);
      reports.push(online.report, under.report, stallsSideBySide(online.longestMs, under));
      if (ONLY === 'rehearsal') continue;
      const prod = await insertRatio(ctx, db, client, 'p', `prod world (${w.births.toLocaleString('en-US')} births)`, N_PROD, 1);
      reports.push(prod.report);
      reports.push(await driftTick(ctx, db, client, `prod world (${w.births.toLocaleString('en-US')} births)`));
      reports.push({
        title: 'packet (c): durations on the prod world',
        rows: [
          { what: 'world load (fixture generator)', ms: Math.round(loadMs), locks_held_ms: '' },
          { what: `rehearsal: one BEGIN … ROLLBACK, ${rehearsal.status}, ${rehearsal.plan.filter((p) => p.ok).length}/${rehearsal.plan.length} plan lines`, ms: Math.round(rehearsalMs), locks_held_ms: rehearsal.writeBlockingMs },
          ...Object.entries(rehearsal.clone.summary?.ms ?? {}).map(([part, ms]) => ({ what: `rehearsal: the clone, ${part}`, ms, locks_held_ms: '' })),
          { what: 'rehearsal: the non-concurrent index build inside it (on the clone)', ms: rehearsal.composite.lockWindow.indexBuild?.ms ?? 0, locks_held_ms: '' },
          { what: 'rehearsal: the USING INDEX promotion inside it (on the clone)', ms: rehearsal.composite.lockWindow.promotion?.ms ?? 0, locks_held_ms: '' },
          { what: 'full apply, every step (with approval), backup and drift check included', ms: Math.round(prod.applyMs), locks_held_ms: '' },
          { what: 'rollback to 0', ms: Math.round(prod.rollbackMs), locks_held_ms: '' },
        ],
        notes: ['locks_held_ms: how long live writers could wait on the rehearsal — a write-blocking lock on a live object to its ROLLBACK (0: the live objects were only read; the clone took the SHARE and ACCESS EXCLUSIVE)', `rehearsal report: ${rehearsalFiles.join(', ')}`],
      });
    } finally {
      await client.end().catch(() => undefined);
      await db.dispose();
    }
  }
  return reports;
}
