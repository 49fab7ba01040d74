// Bad input at every entry (issue 4): the client, the CLI, a workflow started by hand, a raw signal,
// the database. Each gives a clear error and writes nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomInt } from 'node:crypto';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { AdmissionInputError, admitByCode, breakGlass, cancel, status } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { breakGlassSignal } from '../workflows/messages.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';
import { eventually } from './support/temporal.ts';

const nothing = { rows: 0, births: [], permits: [], breakGlass: 0 };
/** A stuck birth writes nothing but the REQUESTED permit it holds its place with. */
const parkedOnly = async (pool: AdmissionHarness['db']['pool'], code: string) => {
  const w = await written(pool, code);
  return { ...w, permits: w.permits.map((p) => [p.state, p.row_id, p.birth_id]) };
};
const nothingButRequested = { ...nothing, permits: [['REQUESTED', null, null]] };

describe('bad input never reaches the ledger', () => {
  let h: AdmissionHarness;
  before(async () => (h = await admissionHarness('input')));
  after(async () => h?.stop());

  const admit = (input: Record<string, unknown>, wait = false) =>
    admitByCode(h.client, input as { code: string }, { taskQueue: h.taskQueue, wait });
  const permitCount = async () => (await h.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM birth_admission_permit')).rows[0]!.n;

  test('the client refuses malformed codes, fields and collections before starting anything', async () => {
    const before = await permitCount();
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['empty code', { code: '' }, /code must not be empty/],
      ['10 KB code', { code: `DOT-${'9'.repeat(10_240)}` }, /at most 200 characters/],
      ['newline', { code: 'DOT-123\n' }, /control or invisible/],
      ['zero-width space', { code: 'DOT-1\u200b23' }, /control or invisible/],
      ['surrounding space', { code: ' DOT-123' }, /whitespace/],
      ['collection with a quote', { code: 'DOT-123', collection: "dot_tools'--" }, /collection must be a lower-case table name/],
      ['field sets the code', { code: 'DOT-123', fields: { code: 'DOT-999' } }, /comes from the permit/],
      ['field name with SQL', { code: 'DOT-123', fields: { 'name; drop table dot_tools': 'x' } }, /lower-case column names/],
      ['unknown key', { code: 'DOT-123', sneaky: true }, /Unrecognized key/i],
    ];
    for (const [what, input, message] of cases) {
      await assert.rejects(admit(input), (err: Error) => err instanceof AdmissionInputError && message.test(err.message), what);
    }
    await assert.rejects(h.client.workflow.getHandle(admissionWorkflowId('dot_tools', 'DOT-123')).describe(), WorkflowNotFoundError);
    assert.equal(await permitCount(), before);
  });

  test('SQL metacharacters and unicode are data: the family code rule parks them, nothing is written', async () => {
    const n = randomInt(1e6, 1e7);
    for (const code of [`x${n}'); DROP TABLE dot_tools; --`, `ДОТ-${n}-漢字-🙂`]) {
      await admit({ code, fields: { name: code } });
      const st = await eventually(async () => {
        const s = (await status(h.client, { code })).state;
        return s?.stage === 'BLOCKED' ? s : undefined;
      }, `${code} BLOCKED`);
      assert.deepEqual(st.blockers.map((b) => b.kind), ['code_rule']);
      assert.deepEqual(await parkedOnly(h.db.pool, code), nothingButRequested);
      const { workflowId } = st;
      await cancel(h.client, { code }, { actor: 'input@test', reason: 'bad code' });
      await h.client.workflow.getHandle(workflowId).result().catch(() => undefined);
      const w = await written(h.db.pool, code);
      assert.deepEqual({ ...w, permits: w.permits.map((p) => p.state) }, { ...nothing, permits: ['CANCELLED'] });
    }
    assert.equal((await h.db.pool.query(`SELECT to_regclass('public.dot_tools') IS NOT NULL AS ok`)).rows[0].ok, true);
  });

  test('an unknown collection fails the admission with INVALID_INPUT and writes nothing', async () => {
    const code = freshCode();
    const err = await admit({ code, collection: 'no_such_collection' }, true).catch((e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.match(err.cause!.message, /INVALID_INPUT/);
    assert.equal(await permitCount().then(() => written(h.db.pool, code)).then((w) => w.permits.length), 0);
  });

  test('a workflow started by hand with a bad input fails at once with INVALID_INPUT', async () => {
    const workflowId = `input-by-hand-${randomInt(1e9)}`;
    await h.client.workflow.start('dotBirthAdmit', { taskQueue: h.taskQueue, workflowId, args: [{ code: 'DOT-1\u0000' }] });
    const err = await h.client.workflow.getHandle(workflowId).result().catch((e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    assert.equal((err.cause as ApplicationFailure).type, 'INVALID_INPUT');
  });

  test('an unknown column in the fields fails the insert: the permit ends FAILED, nothing is born', async () => {
    const code = freshCode();
    const err = await admit({ code, fields: { name: code, no_such_column: 'x' } }, true).catch((e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    assert.equal((err.cause as ApplicationFailure).type, 'ADMISSION_FAILED');
    assert.match(err.cause!.message, /INVALID_INPUT.*no_such_column/);
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 0);
    assert.equal(w.births.length, 0);
    assert.deepEqual(w.permits.map((p) => p.state), ['FAILED']);
  });

  test('break-glass without actor or approval is refused by the client and, raw, by the workflow', async () => {
    const code = `Tool_${randomInt(1e8, 1e9)}`;
    await admit({ code, fields: { name: code } });
    await eventually(async () => ((await status(h.client, { code })).state?.stage === 'BLOCKED' ? true : undefined), 'BLOCKED');
    await assert.rejects(breakGlass(h.client, h.db.pool, { code }, { actor: '', reason: 'r', approvalId: 'A-1' }), /actor must not be empty/);
    await assert.rejects(breakGlass(h.client, h.db.pool, { code }, { actor: 'a', reason: 'r' } as never), /approvalId: approval id is required/);

    // The same payload sent around the client: recorded as refused, the birth stays stuck.
    await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).signal(breakGlassSignal, { actor: 'a', reason: 'r' } as never);
    const st = await eventually(async () => {
      const s = (await status(h.client, { code })).state;
      return s?.decisions.length ? s : undefined;
    }, 'the refused signal recorded');
    assert.equal(st.stage, 'BLOCKED');
    assert.equal(st.decisions[0]!.accepted, false);
    assert.match(st.decisions[0]!.note, /approvalId/);
    assert.deepEqual(await parkedOnly(h.db.pool, code), nothingButRequested);

    // And through the CLI: a usage error (exit 2) naming what is missing.
    const env = { ...process.env, TEMPORAL_ADDRESS: testEnv().temporalAddress, DATABASE_URL: h.db.url };
    const cli = await runCli(['break-glass', code, '--actor', 'a', '--reason', 'r'], env);
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /--approval is required/);
    const empty = await runCli(['admit', ''], env);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /code must not be empty/);
    await cancel(h.client, { code }, { actor: 'input@test', reason: 'done' });
  });
});
