// CONTRACT.md "Errors": every function validates its input before any write — NULLs, empty strings,
// 10 KB strings, quotes and SQL metacharacters, unknown collections — and answers with a clear
// BG400 (or the refusal its contract names), leaving no partial state behind.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FreshDatabase } from './support/db.ts';
import { applyStepsSql } from './support/packet-sql.ts';
import { admissionState, issuePermit, newDotCode, rejectsWith, worldDatabase } from './support/packet-world.ts';

const TEN_KB = 'x'.repeat(10 * 1024);
const INJECTION = `x'); DROP TABLE dot_tools; --`;

type Fn = { name: string; sql: string; valid: () => unknown[]; params: string[] };

/** The bad values every text parameter must refuse, with the message that says why. */
const BAD_TEXT: Array<[string, unknown, RegExp]> = [
  ['NULL', null, /must not be NULL/],
  ['empty', '', /must not be empty/],
  ['blank', '   ', /must not be empty/],
  ['10 KB', TEN_KB, /too long: 10240 characters/],
  ['control characters', 'a\nb', /control characters/],
];

describe('bad input into every function: a clear error, no partial state', () => {
  let db: FreshDatabase;
  let permitId: string;
  let code: string;
  let snapshot: () => Promise<unknown>;

  before(async () => {
    db = await worldDatabase('permit_input');
    await applyStepsSql(db.pool, 99);
    code = newDotCode('input');
    permitId = await issuePermit(db.pool, code);
    snapshot = async () => ({
      admission: await admissionState(db.pool),
      statuses: (await db.pool.query(`SELECT status, count(*)::int AS n FROM birth_registry GROUP BY status ORDER BY status`)).rows,
      baselines: (await db.pool.query(`SELECT count(*)::int AS n FROM birth_drift_baseline`)).rows[0],
      tables: (await db.pool.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`)).rows[0],
    });
  });
  after(async () => db?.dispose());

  const fns: Fn[] = [
    {
      name: 'fn_permit_issue',
      sql: 'SELECT fn_permit_issue($1, $2, $3, $4, $5, $6, $7)',
      valid: () => ['wf:input:new', 'dot-input-new-1', 'dot_tools', 60, 'actor', 'wf:input:new', 'run'],
      params: ['idempotency_key', 'entity_code', 'collection_name', '', 'actor'],
    },
    {
      name: 'fn_permit_request',
      sql: 'SELECT fn_permit_request($1, $2, $3, $4, $5, $6, $7)',
      valid: () => ['wf:input:requested', 'dot-input-requested-1', 'dot_tools', 60, 'actor', 'wf:input:requested', 'run'],
      params: ['idempotency_key', 'entity_code', 'collection_name', '', 'actor'],
    },
    {
      name: 'fn_permit_transition',
      sql: 'SELECT fn_permit_transition($1, $2, $3, $4)',
      valid: () => [permitId, 'CANCELLED', 'actor', 'reason'],
      params: ['', 'to_state', 'actor'],
    },
    { name: 'fn_permit_expire_due', sql: 'SELECT fn_permit_expire_due($1)', valid: () => ['sweep'], params: ['actor'] },
    {
      name: 'fn_break_glass_open',
      sql: 'SELECT fn_break_glass_open($1, $2, $3, $4, $5, $6, $7)',
      valid: () => [code, 'dot_tools', 'operator', 'incident OPS-1', 'APR-1', permitId, 'wf:input'],
      params: ['entity_code', 'collection_name', 'actor', 'reason', 'approval_id'],
    },
    {
      name: 'fn_birth_retire',
      sql: 'SELECT fn_birth_retire($1, $2, $3, $4)',
      valid: () => ['KBA-000001', 'kb_articles', 'operator', 'phantom'],
      params: ['entity_code', 'collection_name', 'actor', 'reason'],
    },
    {
      name: 'fn_admission_preflight',
      sql: 'SELECT fn_admission_preflight($1, $2)',
      valid: () => [code, 'dot_tools'],
      params: ['entity_code', 'collection_name'],
    },
    {
      name: 'fn_admission_open',
      sql: 'SELECT fn_admission_open($1, $2, $3, $4, $5, $6, $7)',
      valid: () => ['dot-input-open-1', 'dot_tools', 'wf:input:open', 60, 'actor', 'wf:input:open', 'run'],
      params: ['entity_code', 'collection_name', 'idempotency_key', '', 'actor'],
    },
    {
      name: 'fn_admission_rollback',
      sql: 'SELECT fn_admission_rollback($1, $2, $3)',
      valid: () => [permitId, 'operator', 'undo'],
      params: ['', 'actor', 'reason'],
    },
    { name: 'fn_admission_assert_safe', sql: 'SELECT * FROM fn_admission_assert_safe($1)', valid: () => ['birth_admit'], params: ['action'] },
    {
      name: 'fn_drift_capture_baseline',
      sql: 'SELECT fn_drift_capture_baseline($1, $2, $3, $4)',
      valid: () => [`input-${process.pid}`, 'owner', 'accepted change', 'APR-1'],
      params: ['baseline_set', 'actor', 'reason', 'approval_id'],
    },
  ];

  for (const fn of fns) {
    test(`${fn.name}: NULL, empty, blank, 10 KB and control-character text are refused with BG400`, async () => {
      const before = await snapshot();
      for (const [i, param] of fn.params.entries()) {
        if (!param) continue;
        for (const [label, value, why] of BAD_TEXT) {
          // A reason is free text: several lines are fine there.
          if (param === 'reason' && label === 'control characters') continue;
          const args = fn.valid();
          args[i] = value;
          const e = await rejectsWith(db.pool.query(fn.sql, args), 'BG400');
          assert.match(e.message, why, `${param} ${label}`);
          if (typeof value === 'string' && value.length > 1000) assert.ok(e.message.length < 300, 'the error does not echo the 10 KB value');
        }
      }
      assert.deepEqual(await snapshot(), before);
    });
  }

  test('fn_permit_move (internal) writes row_id only with → CONSUMED and birth_id only with → FINALIZED', async () => {
    const before = await snapshot();
    await rejectsWith(db.pool.query(`SELECT fn_permit_move($1, 'CANCELLED', 'op', 'r', p_row_id => 1)`, [permitId]),
      'BG400', /row_id is set only by the move to CONSUMED/);
    await rejectsWith(db.pool.query(`SELECT fn_permit_move($1, 'CONSUMED', 'op', 'r', p_birth_id => 1)`, [permitId]),
      'BG400', /birth_id is set only by the move to FINALIZED/);
    assert.deepEqual(await snapshot(), before);
  });

  test('unknown, unmanaged and injected collection names are refused before any write', async () => {
    const before = await snapshot();
    for (const coll of ['no_such_collection', 'dot_iu_command_catalog', `dot_tools'; DROP TABLE dot_tools; --`, 'DOT_TOOLS']) {
      await rejectsWith(db.pool.query('SELECT fn_permit_issue($1, $2, $3, 60, $4)', [`wf:${coll}`, 'dot-x-1', coll, 'actor']),
        'BG400', /unknown or not managed in meta_catalog/);
      await rejectsWith(db.pool.query('SELECT fn_permit_request($1, $2, $3, 60, $4)', [`wf:${coll}`, 'dot-x-1', coll, 'actor']),
        'BG400', /unknown or not managed in meta_catalog/);
      await rejectsWith(db.pool.query('SELECT fn_break_glass_open($1, $2, $3, $4, $5, $6, NULL)', [code, coll, 'op', 'r', 'A', permitId]),
        'BG400', /unknown or not managed/);
    }
    await rejectsWith(db.pool.query(`SELECT fn_birth_retire('KBA-000001', $1, 'op', 'r')`, [INJECTION]), 'BG400', /no birth of/);
    for (const coll of ['no_such_collection', INJECTION]) {
      await rejectsWith(db.pool.query('SELECT fn_admission_preflight($1, $2)', [code, coll]), 'BG400', /unknown or not managed/);
      await rejectsWith(db.pool.query(`SELECT fn_admission_open($1, $2, 'wf:coll', 60, 'actor')`, [newDotCode('input-coll'), coll]), 'BG400', /unknown or not managed/);
    }
    assert.deepEqual(await snapshot(), before);
  });

  test('numbers out of range and unknown ids are refused', async () => {
    const before = await snapshot();
    for (const ttl of [null, 0, -5, 604801]) {
      await rejectsWith(db.pool.query(`SELECT fn_permit_issue('wf:ttl', 'dot-ttl-1', 'dot_tools', $1, 'actor')`, [ttl]), 'BG400', /ttl_seconds must be between/);
      await rejectsWith(db.pool.query(`SELECT fn_permit_request('wf:ttl', 'dot-ttl-1', 'dot_tools', $1, 'actor')`, [ttl]), 'BG400', /ttl_seconds must be between/);
      await rejectsWith(db.pool.query(`SELECT fn_admission_open('dot-ttl-1', 'dot_tools', 'wf:ttl', $1, 'actor')`, [ttl]), 'BG400', /ttl_seconds must be between/);
    }
    await rejectsWith(db.pool.query(`SELECT fn_permit_transition(NULL, 'CANCELLED', 'a', 'r')`), 'BG400', /permit_id must not be NULL/);
    await rejectsWith(db.pool.query(`SELECT fn_permit_transition(987654321, 'CANCELLED', 'a', 'r')`), 'BG400', /permit 987654321 does not exist/);
    await rejectsWith(db.pool.query(`SELECT fn_permit_transition($1, 'DROP', 'a', 'r')`, [permitId]), 'BG400', /not a permit state/);
    await rejectsWith(db.pool.query(`SELECT fn_permit_transition($1, 'CANCELLED', 'a', $2)`, [permitId, TEN_KB]), 'BG400', /reason is too long/);
    await rejectsWith(db.pool.query(`SELECT fn_admission_state(NULL)`), 'BG400', /permit_id must not be NULL/);
    await rejectsWith(db.pool.query(`SELECT fn_admission_rollback(NULL, 'op', 'r')`), 'BG400', /permit_id must not be NULL/);
    await rejectsWith(db.pool.query(`SELECT fn_admission_rollback(987654321, 'op', 'r')`), 'BG400', /does not exist/);
    await rejectsWith(db.pool.query(`SELECT fn_admission_rollback($1, 'op', 'r')`, [permitId]), 'BG428', /only a FINALIZED admission/);
    await rejectsWith(db.pool.query(`SELECT fn_admission_state(987654321)`), 'BG400', /does not exist/);
    await rejectsWith(db.pool.query(`SELECT fn_break_glass_open($1, 'dot_tools', 'op', 'r', 'A', NULL, NULL)`, [code]), 'BG400', /permit_id must not be NULL/);
    await rejectsWith(db.pool.query(`SELECT fn_break_glass_open('dot-other-9', 'dot_tools', 'op', 'r', 'A', $1, NULL)`, [permitId]), 'BG409', /not for the break-glass target/);
    await rejectsWith(db.pool.query(`SELECT fn_break_glass_open($1, 'dot_tools', 'op', $2, 'A', $3, NULL)`, [code, 'r'.repeat(2001), permitId]), 'BG400', /reason is too long/);
    await rejectsWith(db.pool.query(`SELECT fn_birth_retire('NO-SUCH-1', 'kb_articles', 'op', 'r')`), 'BG400', /no birth of NO-SUCH-1/);
    // A birth whose row still exists is no phantom: the retire gate refuses, the status stays. The
    // check reads the family with birthgate_owner's rights: without SELECT on it the retire refuses
    // (fail closed) rather than guess.
    const live = await db.pool.query(`SELECT entity_code FROM birth_registry WHERE collection_name = 'kb_articles' ORDER BY id LIMIT 1`);
    await rejectsWith(db.pool.query(`SELECT fn_birth_retire($1, 'kb_articles', 'op', 'r')`, [live.rows[0].entity_code]), 'BG428',
      /birthgate_owner cannot read kb_articles to prove the row is gone/);
    await db.pool.query('GRANT SELECT ON kb_articles TO birthgate_owner');
    try {
      await rejectsWith(db.pool.query(`SELECT fn_birth_retire($1, 'kb_articles', 'op', 'r')`, [live.rows[0].entity_code]), 'BG428', /row_absent/);
    } finally {
      await db.pool.query('REVOKE SELECT ON kb_articles FROM birthgate_owner');
    }
    assert.deepEqual(await snapshot(), before);
  });

  test('fn_admission_insert_dot_tools refuses bad fields and permits before inserting', async () => {
    const mine = newDotCode('input-insert');
    const permit = await issuePermit(db.pool, mine);
    const before = await snapshot();
    const call = (p: unknown, f: unknown) => db.pool.query('SELECT * FROM fn_admission_insert_dot_tools($1, $2)', [p, f]);
    await rejectsWith(call(null, {}), 'BG400', /permit_id must not be NULL/);
    await rejectsWith(call(permit, null), 'BG400', /fields must be a JSON object/);
    await rejectsWith(call(permit, JSON.stringify([1, 2])), 'BG400', /fields must be a JSON object/);
    await rejectsWith(call(permit, { code: 'DOT-999' }), 'BG400', /must not set code/);
    await rejectsWith(call(permit, { id: 1 }), 'BG400', /must not set id/);
    await rejectsWith(call(permit, { no_such_column: 1 }), 'BG400', /unknown dot_tools column: no_such_column/);
    await rejectsWith(call(permit, { [`name" text); DROP TABLE dot_tools; --`]: 'x' }), 'BG400', /unknown dot_tools column/);
    await rejectsWith(call(permit, { name: TEN_KB }), 'BG400', /fields.name is too long/);
    await rejectsWith(call(987654321, {}), 'BG400', /does not exist/);
    assert.deepEqual(await snapshot(), before);
    const other = await issuePermit(db.pool, newDotCode('input-species'), { collection: 'entity_species' });
    const mid = await snapshot();
    await rejectsWith(call(other, { name: 'x' }), 'BG400', /is for collection entity_species, not dot_tools/);
    assert.deepEqual(await snapshot(), mid);
    await db.pool.query(`SELECT fn_permit_transition($1, 'CANCELLED', 'test', 'cleanup')`, [other]);

    // The refusals were about the input, not the permit: with good fields the same call on the same
    // permit inserts the row once, and its commit finalizes that permit with the row and a birth linked.
    const { rows: [inserted] } = await call(permit, { name: 'valid' });
    assert.equal(inserted.entity_code, mine);
    const row = await db.pool.query('SELECT id::text, name FROM dot_tools WHERE code = $1', [mine]);
    assert.deepEqual(row.rows, [{ id: String(inserted.row_id), name: 'valid' }]);
    const p = await db.pool.query(
      `SELECT p.state, p.row_id::text, b.entity_code, b.entity_id::text FROM birth_admission_permit p
         JOIN birth_registry b ON b.id = p.birth_id WHERE p.permit_id = $1`, [permit]);
    assert.deepEqual(p.rows, [{ state: 'FINALIZED', row_id: String(inserted.row_id), entity_code: mine, entity_id: String(inserted.row_id) }]);
  });

  test('quotes and SQL metacharacters are data, never SQL', async () => {
    // A permit for a code full of metacharacters is only data; the gate then refuses the code by the
    // family code rule (step 13), and dot_tools is untouched.
    const weird = `o'brien"; DROP TABLE dot_tools; --`;
    const p = await db.pool.query<{ permit_id: string; entity_code: string }>(
      `SELECT permit_id, entity_code FROM fn_permit_issue($1, $2, 'dot_tools', 60, $3)`, [`wf:${weird}`, weird, `actor ${weird}`]);
    assert.equal(p.rows[0]!.entity_code, weird);
    const before = await snapshot();
    await rejectsWith(db.pool.query('SELECT * FROM fn_admission_insert_dot_tools($1, $2)', [p.rows[0]!.permit_id, { name: 'weird' }]),
      'BG403', /does not match the family code rule/);
    assert.deepEqual(await snapshot(), before);

    // Quoted values in the fields are stored verbatim.
    const good = newDotCode('input-quotes');
    const gp = await issuePermit(db.pool, good);
    const name = `it's "quoted"; DROP TABLE dot_tools; -- \\ $1 %s %I`;
    await db.pool.query('SELECT * FROM fn_admission_insert_dot_tools($1, $2)', [gp, { name, description: INJECTION }]);
    const row = await db.pool.query(`SELECT name, description FROM dot_tools WHERE code = $1`, [good]);
    assert.deepEqual(row.rows[0], { name, description: INJECTION });
    const t = await db.pool.query(`SELECT to_regclass('public.dot_tools') IS NOT NULL AS present`);
    assert.equal(t.rows[0].present, true);
  });
});
