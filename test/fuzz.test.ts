// The fuzz pass (issue 11): random unicode, SQL and format metacharacters, control and invisible
// characters, huge strings, NULLs and values of the wrong type, drawn from a fixed seed (chaos/fuzz.ts),
// thrown at every entry — the client library, the `birthgate` CLI, and the SQL functions as the roles
// that may call them (the worker, an operator). Each bad input gets a clear error (the refusal it is
// documented to get, naming what was wrong, never echoing a huge value), and nothing is written: the
// ledger, the births, the rows, the break-glass, drift and handoff records and Temporal's visibility
// are the same before and after. Valid text full of metacharacters travels as data.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import pg from 'pg';
import {
  AdmissionInputError, admitByCode, breakGlass, cancel, retry, rollback, status,
} from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { createPool, type Pool } from '../db/pool.ts';
import {
  codePointLength, garbageWord, type Invalid, invalidClientText, invalidId, invalidIdentifier, invalidSqlFreeText, invalidSqlIdentifierText,
  nastyPrintable, randomUnicode, tooLong,
} from '../chaos/fuzz.ts';
import { Prng } from '../chaos/prng.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';
import { admissionState, installOperatorLogin, issuePermit, operatorUrl } from './support/packet-world.ts';
import { eventually } from './support/temporal.ts';

const SEED = 'fuzz-issue-11';

/** Everything an admission, an operator or a tick can write, and what Temporal runs on the task queue. */
async function everything(pool: Pool, client: Client, taskQueue: string): Promise<Record<string, unknown>> {
  const { rows: [r] } = await pool.query<{ s: Record<string, unknown> }>(`SELECT jsonb_build_object(
      'status_transitions', (SELECT count(*) FROM birth_status_transition),
      'switch_log', (SELECT count(*) FROM birth_admission_switch_log),
      'families', (SELECT jsonb_agg(jsonb_build_array(collection_name, required, halted) ORDER BY collection_name) FROM birth_admission_family),
      'rebaselines', (SELECT count(*) FROM birth_drift_rebaseline),
      'baseline_rows', (SELECT count(*) FROM birth_drift_baseline),
      'findings', (SELECT count(*) FROM birth_drift_finding),
      'watch_ticks', (SELECT coalesce(sum(ticks), 0) FROM birth_drift_watch),
      'handoff_batches', (SELECT count(*) FROM birth_handoff_batch),
      'handoff_cursor', (SELECT jsonb_agg(jsonb_build_array(source, last_id) ORDER BY source) FROM birth_handoff_cursor),
      'events', (SELECT count(*) FROM event_pending),
      'candidates', (SELECT count(*) FROM governance_candidate_state),
      'changelog', (SELECT count(*) FROM registry_changelog)) AS s`);
  let workflows = 0;
  for await (const _ of client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) workflows += 1;
  return { ...(await admissionState(pool)), ...r!.s, workflows };
}

/** A clear refusal: it says what was wrong, it does not echo a long value back. */
function assertNoEcho(message: string, value: unknown, what: string): void {
  if (typeof value !== 'string' || codePointLength(value) < 64) return;
  const cps = [...value];
  for (let i = 0; i + 32 <= cps.length; i += Math.max(32, Math.floor(cps.length / 8))) {
    assert.ok(!message.includes(cps.slice(i, i + 32).join('')), `${what}: the error echoes the value back: ${message.slice(0, 200)}`);
  }
}

describe('fuzz: bad input at every entry gets a clear error and writes nothing', () => {
  let h: AdmissionHarness;
  let workerDb: pg.Pool;
  let operatorDb: Pool;
  let permitId: string;
  let permitCode: string;
  const snapshot = () => everything(h.db.pool, h.client, h.taskQueue);

  before(async () => {
    h = await admissionHarness('fuzz');
    await installOperatorLogin(h.db.pool);
    operatorDb = createPool(operatorUrl(h.db.url), { max: 2, applicationName: 'test-fuzz-operator' });
    operatorDb.on('error', () => undefined);
    workerDb = new pg.Pool({ connectionString: h.workerUrl, max: 2, application_name: 'test-fuzz-worker' });
    workerDb.on('error', () => undefined);
    // One live permit the calls may name (RESERVED, for a code the family rule accepts): every call
    // below is invalid in another argument, so it must stay exactly as it is.
    permitCode = freshCode();
    permitId = await issuePermit(h.db.pool, permitCode);
  });
  after(async () => {
    await workerDb?.end();
    await operatorDb?.end();
    await h?.stop();
  });

  test('the client: 300 seeded bad inputs to admit, status, retry, cancel, rollback and break-glass — refused before anything is sent', async () => {
    const rng = new Prng(SEED).fork('client');
    const before = await snapshot();
    const ref = () => ({ code: freshCode() });
    const tally: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const target = rng.weighted({ admit: 50, status: 6, retry: 10, cancel: 10, rollback: 10, breakGlass: 14 });
      let call: () => Promise<unknown>;
      let bad: Invalid;
      let field: string;
      if (target === 'admit') {
        const input: Record<string, unknown> = { code: freshCode(), fields: { name: nastyPrintable(rng) }, requestedBy: nastyPrintable(rng, 40) };
        field = rng.pick(['code', 'collection', 'fields', 'requestedBy', 'permitTtlSeconds', 'historyBudget', 'unknown key']);
        switch (field) {
          case 'code': bad = invalidClientText(rng, 200); break;
          case 'requestedBy': bad = invalidClientText(rng, 200); break;
          case 'collection': bad = invalidIdentifier(rng); break;
          case 'permitTtlSeconds': bad = { value: rng.pick([0, 29, 86_401, 1.5, '900', Number.NaN, null, -1]), why: 'out of range' }; break;
          case 'historyBudget': bad = { value: rng.pick([0, 99, 40_001, 2.5, '10000', null]), why: 'out of range' }; break;
          case 'unknown key': bad = { value: true, why: 'not in the contract' }; break;
          default: bad = rng.pick<() => Invalid>([
            () => ({ value: { code: 'DOT-1' }, why: 'the code as a field' }),
            () => ({ value: { [rng.pick(['Name', 'a b', `x${rng.pick(["'", ';', '"'])}`, randomUnicode(rng, 3)])]: 'x' }, why: 'a field name that is no column name' }),
            () => ({ value: { name: tooLong(rng, 4000) }, why: 'a field value over 4,000 characters' }),
            () => ({ value: { name: { nested: true } }, why: 'a nested value' }),
            () => ({ value: Object.fromEntries(Array.from({ length: 41 }, (_, k) => [`f${k}`, 'x'])), why: 'more than 40 fields' }),
            () => ({ value: 'name=x', why: 'not an object' }),
          ])();
        }
        if (field === 'unknown key') input[`sneaky_${rng.int(0, 99)}`] = true;
        else input[field] = bad.value;
        call = () => admitByCode(h.client, input as { code: string }, { taskQueue: h.taskQueue });
      } else {
        // An operator's decision: either the admission named badly, or one of the payload's fields.
        const payload: Record<string, unknown> = { actor: nastyPrintable(rng, 40), reason: nastyPrintable(rng, 80), ...(target === 'breakGlass' ? { approvalId: nastyPrintable(rng, 30) } : {}) };
        const fields = ['ref', 'actor', ...(target === 'retry' ? [] : ['reason']), ...(target === 'breakGlass' ? ['approvalId'] : []), 'unknown key'];
        field = target === 'status' ? 'ref' : rng.pick(fields);
        let r: Record<string, unknown> = ref();
        if (field === 'ref') {
          // A bad code, or a good code in a collection that is no table name.
          if (rng.chance(0.7)) {
            bad = invalidClientText(rng, 200);
            r = { code: bad.value };
          } else {
            bad = invalidIdentifier(rng);
            r = { code: freshCode(), collection: bad.value };
          }
        } else if (field === 'unknown key') {
          bad = { value: 1, why: 'not in the contract' };
          payload.breakGlassId = '1'; // only the workflow's own client may name an entry: refused as unknown here
          if (target !== 'breakGlass') payload[`sneaky_${rng.int(0, 99)}`] = 1;
        } else {
          bad = invalidClientText(rng, field === 'reason' ? 2000 : 200);
          if (field === 'reason' && target === 'retry') continue;
          payload[field] = bad.value;
        }
        const rr = r as { code: string };
        call = {
          status: () => status(h.client, rr),
          retry: () => retry(h.client, rr, payload as never),
          cancel: () => cancel(h.client, rr, payload as never),
          rollback: () => rollback(h.client, rr, payload as never, { taskQueue: h.taskQueue }),
          breakGlass: () => breakGlass(h.client, operatorDb, rr, payload as never),
        }[target];
      }
      const what = `#${i} ${target} with a bad ${field} (${bad.why})`;
      await assert.rejects(call(), (err: Error) => {
        assert.ok(err instanceof AdmissionInputError, `${what}: ${err.name}: ${err.message.slice(0, 300)}`);
        assert.match(err.message, /^(admission|retry|cancel|rollback|break-glass): /, what);
        if (field !== 'fields' && field !== 'unknown key') assertNoEcho(err.message, bad.value, what);
        return true;
      }, what);
      tally[target] = (tally[target] ?? 0) + 1;
    }
    assert.deepEqual(await snapshot(), before, 'nothing written, nothing started');
    assert.ok(Object.keys(tally).length === 6, `every entry was fuzzed: ${JSON.stringify(tally)}`);
  });

  test('valid codes full of metacharacters and unicode are data: each parks on the family rule, is cancelled, and is stored byte for byte', async () => {
    const rng = new Prng(SEED).fork('data');
    for (let i = 0; i < 3; i++) {
      const code = nastyPrintable(rng, 60);
      await admitByCode(h.client, { code, fields: { name: nastyPrintable(rng, 100) }, requestedBy: 'dot-fuzz' }, { taskQueue: h.taskQueue });
      // Generous: on a loaded machine the first workflow task may wait long for a worker slot.
      const st = await eventually(async () => {
        const s = (await status(h.client, { code })).state;
        return s?.stage === 'BLOCKED' ? s : undefined;
      }, `${JSON.stringify(code)} parked`, 180_000);
      assert.deepEqual(st.blockers.map((b) => b.kind), ['code_rule'], JSON.stringify(code));
      await cancel(h.client, { code }, { actor: 'ops@fuzz', reason: 'not a code' });
      await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).result().catch(() => undefined);
      const w = await written(h.db.pool, code);
      assert.deepEqual({ rows: w.rows, births: w.births.length, breakGlass: w.breakGlass, permits: w.permits.map((p) => p.state) },
        { rows: 0, births: 0, breakGlass: 0, permits: ['CANCELLED'] }, JSON.stringify(code));
      const stored = await h.db.pool.query<{ entity_code: string }>('SELECT entity_code FROM birth_admission_permit WHERE permit_id = $1', [w.permits[0]!.permit_id]);
      assert.equal(stored.rows[0]!.entity_code, code, 'the code is stored exactly as sent');
    }
    const t = await h.db.pool.query(`SELECT to_regclass('public.dot_tools') IS NOT NULL AS present, to_regclass('public.birth_admission_permit') IS NOT NULL AS ledger`);
    assert.deepEqual(t.rows[0], { present: true, ledger: true });
  });

  test('the CLI: seeded bad arguments to every admission verb exit 2 with a message, nothing written', async () => {
    const rng = new Prng(SEED).fork('cli');
    const env = { ...process.env, TEMPORAL_ADDRESS: testEnv().temporalAddress, DATABASE_URL: h.db.url, BIRTHGATE_TASK_QUEUE: h.taskQueue };
    // argv cannot carry a NUL byte: everything else can.
    const argText = (max: number): string => {
      for (;;) {
        const v = invalidClientText(rng, max).value;
        if (typeof v === 'string' && !v.includes('\u0000') && v !== '' && v.length < 20_000) return v;
      }
    };
    // One process each (~2–5 s): every admission verb once, the admit's options besides.
    const cases: string[][] = [
      ['admit', argText(200), '--wait'],
      ['admit', freshCode(), '--field', `${rng.pick(['Name', 'a b', `x'${garbageWord(rng)}`])}=x`],
      ['admit', freshCode(), '--field', `name=${'y'.repeat(4001)}`],
      ['admit', freshCode(), '--collection', `dot_tools${rng.pick(["'", ';--', ' OR 1=1'])}`],
      ['status', argText(200)],
      ['retry', argText(200)],
      ['cancel', freshCode(), '--reason', argText(2000)],
      ['rollback', argText(200), '--reason', 'r'],
      ['break-glass', freshCode(), '--actor', argText(200), '--reason', 'r', '--approval', 'A-1'],
    ];
    const before = await snapshot();
    for (const args of cases) {
      const r = await runCli(args, env, 120_000);
      const what = `birthgate ${args.map((a) => JSON.stringify(a.slice(0, 40))).join(' ')}`;
      assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr.slice(0, 500)}`);
      assert.ok(r.stderr.trim().length > 0, `${what}: says why`);
      assert.doesNotMatch(r.stderr, /\n\s+at .+\(.+:\d+:\d+\)/, `${what}: a message, not a stack trace`);
    }
    assert.deepEqual(await snapshot(), before, 'nothing written, nothing started');
  });

  test('the SQL functions, as the worker and as an operator: 400 seeded calls with bad arguments, each refused with a clear SQLSTATE, nothing written', async () => {
    const rng = new Prng(SEED).fork('sql');
    const db = (await h.db.pool.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
    const wf = `wf:${permitCode}`;
    const text = (max: number) => () => invalidSqlIdentifierText(rng, max);
    const free = (max: number) => () => invalidSqlFreeText(rng, max);
    const id = () => invalidId(rng);
    const pick = (...values: unknown[]) => () => ({ value: rng.pick(values), why: 'refused value' });
    type Param = { valid: () => unknown; bad?: () => Invalid };
    type Fn = { name: string; role: 'worker' | 'operator'; sql: string; params: Param[] };
    const ok = (v: unknown) => () => v;
    const code: Param = { valid: () => permitCode, bad: text(200) };
    const coll: Param = { valid: ok('dot_tools'), bad: () => (rng.chance(0.5) ? invalidSqlIdentifierText(rng, 200) : { value: garbageWord(rng), why: 'unknown collection' }) };
    const actor: Param = { valid: () => nastyPrintable(rng, 40), bad: text(200) };
    const reason: Param = { valid: () => nastyPrintable(rng, 80), bad: free(2000) };
    const permit: Param = { valid: () => permitId, bad: id };
    const fns: Fn[] = [
      { name: 'fn_permit_request', role: 'worker', sql: 'SELECT fn_permit_request($1, $2, $3, $4, $5, $6, $7)',
        params: [{ valid: ok(`${wf}:fuzz`), bad: text(500) }, { valid: () => `DOT-${rng.int(100_000, 999_999)}`, bad: text(200) }, coll,
          { valid: ok(600), bad: pick(null, 0, -1, 604_801, 2 ** 31, 'ten', '1e3') }, actor, { valid: ok(wf) }, { valid: ok('run-1') }] },
      { name: 'fn_permit_issue', role: 'worker', sql: 'SELECT fn_permit_issue($1, $2, $3, $4, $5, $6, $7)',
        params: [{ valid: ok(`${wf}:fuzz`), bad: text(500) }, { valid: () => `DOT-${rng.int(100_000, 999_999)}`, bad: text(200) }, coll,
          { valid: ok(600), bad: pick(null, 0, -1, 604_801, 2 ** 31, 'ten', '1e3') }, actor, { valid: ok(wf) }, { valid: ok('run-1') }] },
      { name: 'fn_permit_transition', role: 'worker', sql: 'SELECT fn_permit_transition($1, $2, $3, $4)',
        params: [permit, { valid: ok('CANCELLED'), bad: () => ({ value: rng.chance(0.3) ? null : garbageWord(rng), why: 'not a state' }) }, actor, { valid: ok('fuzz') }] },
      { name: 'fn_permit_withdraw', role: 'worker', sql: 'SELECT fn_permit_withdraw($1, $2, $3, $4)',
        params: [permit, { valid: ok('CANCELLED'), bad: () => ({ value: rng.pick([null, 'RESERVED', 'FINALIZED', garbageWord(rng)]), why: 'not CANCELLED or FAILED' }) }, actor, reason] },
      { name: 'fn_permit_expire_due', role: 'worker', sql: 'SELECT fn_permit_expire_due($1)', params: [actor] },
      { name: 'fn_admission_insert_dot_tools', role: 'worker', sql: 'SELECT * FROM fn_admission_insert_dot_tools($1, $2)',
        params: [permit, { valid: () => ({ name: nastyPrintable(rng) }), bad: () => rng.pick<() => Invalid>([
          () => ({ value: null, why: 'NULL fields' }),
          () => ({ value: JSON.stringify(rng.pick([[1, 2], 'name', 42, true])), why: 'not an object' }),
          () => ({ value: { [rng.pick(['code', 'id', 'created_by', 'updated_by'])]: 'x' }, why: 'a column the admission sets' }),
          () => ({ value: { [garbageWord(rng)]: 'x' }, why: 'no such column' }),
          () => ({ value: { name: 'n'.repeat(8001 + rng.int(0, 5000)) }, why: 'a value over 8,000 characters' }),
          () => ({ value: { name: `a\u0000b` }, why: 'a NUL byte' }),
        ])() }] },
      { name: 'fn_admission_state', role: 'worker', sql: 'SELECT fn_admission_state($1)', params: [permit] },
      { name: 'fn_admission_preflight', role: 'worker', sql: 'SELECT fn_admission_preflight($1, $2)', params: [code, coll] },
      { name: 'fn_admission_rollback', role: 'worker', sql: 'SELECT fn_admission_rollback($1, $2, $3)', params: [permit, actor, reason] },
      { name: 'fn_governance_handoff_batch', role: 'worker', sql: 'SELECT fn_governance_handoff_batch($1, $2, $3)',
        params: [{ valid: ok(db), bad: () => (rng.chance(0.5) ? invalidSqlIdentifierText(rng, 63) : { value: `${db}${garbageWord(rng)}`, why: 'another database' }) },
          { valid: ok(100), bad: pick(null, 0, -3, 10_001, 2 ** 31, 'many') }, { valid: () => nastyPrintable(rng, 40), bad: text(500) }] },
      { name: 'fn_drift_watch_tick', role: 'worker', sql: 'SELECT fn_drift_watch_tick($1)', params: [actor] },
      { name: 'fn_permit_reconcile_closed', role: 'worker', sql: 'SELECT fn_permit_reconcile_closed($1, $2, $3, $4, $5, $6)',
        params: [permit, { valid: ok(wf), bad: () => ({ value: rng.chance(0.3) ? null : `${wf}${garbageWord(rng)}`, why: 'not the permit\'s workflow' }) },
          { valid: ok('run-1') }, { valid: ok('COMPLETED'), bad: pick(null, 'RUNNING', 'CONTINUED_AS_NEW', garbageWord(rng)) },
          { valid: () => new Date(Date.now() - 60_000).toISOString(), bad: pick(null, new Date(Date.now() + 86_400_000).toISOString(), 'yesterday', '99999-01-01') }, actor] },
      { name: 'fn_break_glass_open', role: 'operator', sql: 'SELECT fn_break_glass_open($1, $2, $3, $4, $5, $6, $7)',
        params: [code, coll, actor, reason, { valid: () => nastyPrintable(rng, 30), bad: text(200) }, permit, { valid: ok(wf) }] },
      { name: 'fn_admission_halt', role: 'operator', sql: 'SELECT fn_admission_halt($1, $2, $3, $4)',
        params: [coll, { valid: ok(true), bad: pick(null, 'maybe', 2) }, actor, reason] },
      { name: 'fn_birth_retire', role: 'operator', sql: 'SELECT fn_birth_retire($1, $2, $3, $4)', params: [code, coll, actor, reason] },
      { name: 'fn_drift_accept', role: 'operator', sql: 'SELECT fn_drift_accept($1, $2, $3)', params: [actor, reason, { valid: ok('FUZZ-1'), bad: text(200) }] },
      { name: 'fn_drift_rebaseline', role: 'operator', sql: 'SELECT * FROM fn_drift_rebaseline($1, $2, $3)', params: [actor, reason, { valid: ok('FUZZ-1'), bad: text(200) }] },
    ];
    // A clear refusal: the contract's own (BG4xx) or the type system's (class 22, data exceptions).
    const CLEAR = /^(BG400|BG403|BG409|BG422|BG423|BG428|22\w{3})$/;
    const before = await snapshot();
    const refusedBy: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      const fn = fns[i % fns.length]!;
      const fuzzable = fn.params.map((p, k) => (p.bad ? k : -1)).filter((k) => k >= 0);
      // One bad argument always, sometimes two: the call is invalid by construction.
      const badAt = new Set([rng.pick(fuzzable), ...(rng.chance(0.3) ? [rng.pick(fuzzable)] : [])]);
      const bad = new Map([...badAt].map((k) => [k, fn.params[k]!.bad!()]));
      const args = fn.params.map((p, k) => (bad.has(k) ? bad.get(k)!.value : p.valid()));
      const what = `#${i} ${fn.name}(${[...bad].map(([k, b]) => `arg ${k + 1}: ${b.why}`).join(', ')}) as the ${fn.role}`;
      const conn = fn.role === 'worker' ? workerDb : operatorDb;
      const err = await conn.query(fn.sql, args).then(() => null, (e: pg.DatabaseError) => e);
      assert.ok(err, `${what}: accepted`);
      assert.match(err.code ?? '', CLEAR, `${what}: ${err.code} ${err.message.slice(0, 300)}`);
      assert.ok(err.message.length <= 600, `${what}: a short message (${err.message.length} characters)`);
      // The functions' own refusals never echo a value; PostgreSQL's type errors (class 22) quote their short input.
      if (err.code!.startsWith('BG')) for (const b of bad.values()) assertNoEcho(err.message, b.value, what);
      refusedBy[err.code!] = (refusedBy[err.code!] ?? 0) + 1;
    }
    assert.deepEqual(await snapshot(), before, 'nothing written');
    assert.ok((refusedBy.BG400 ?? 0) > 100, `mostly the contract's own refusal: ${JSON.stringify(refusedBy)}`);
    const p = await h.db.pool.query('SELECT state FROM birth_admission_permit WHERE permit_id = $1', [permitId]);
    assert.deepEqual(p.rows, [{ state: 'RESERVED' }], 'the permit every call named did not move');
  });
});
