// Issue 8 item 3: operator decisions are Workflow Updates with answers. Every refusal comes back to the
// caller (the CLI exits 3 with the reason) and a refused input never reaches history; `admit --wait`
// returns when the admission parks (exit 3, with its blockers and the commands that resolve it); a
// second admit with other fields is refused (exit 2); a rolled-back birth is reported ROLLED_BACK.
// Real dev server, real PostgreSQL, the real admission worker.
import assert from 'node:assert/strict';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { after, before, describe, test } from 'node:test';
import { admitByCode, NoWorkerError, retry, rollback, status } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { breakGlassUpdate, retryUpdate } from '../workflows/messages.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';
import { rebaseline } from './support/packet-world.ts';
import { eventually } from './support/temporal.ts';

/** A DOT code outside the dot_tools family rule: it parks on `code_rule`. */
const parkingCode = () => `DOT_PARK_${freshCode().slice(4)}`;
const operator = { actor: 'ops@protocol.test', reason: 'protocol drill' };

/** A Workflow Update refused by its validator: the reason is the failure's cause. */
async function refused(p: Promise<unknown>, why: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof WorkflowUpdateFailedError, `${err.name}: ${err.message}`);
    assert.match((err.cause as Error).message, why);
    return true;
  });
}

describe('the operator protocol answers', () => {
  let h: AdmissionHarness;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    h = await admissionHarness('protocol');
    env = { ...process.env, TEMPORAL_ADDRESS: testEnv().temporalAddress, DATABASE_URL: h.db.url, BIRTHGATE_TASK_QUEUE: h.taskQueue };
  });
  after(async () => h?.stop());

  const historyLength = async (code: string) =>
    (await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).fetchHistory()).events?.length ?? 0;

  test('admit --wait on a parking admission returns at once with exit 3, its blockers and the commands', async () => {
    const code = parkingCode();
    const r = await runCli(['admit', code, '--wait'], env, 60_000);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, new RegExp(`${code} is BLOCKED`));
    assert.match(r.stdout, /blocker code_rule: code .* does not match/);
    assert.match(r.stdout, new RegExp(`birthgate break-glass ${code} --actor A --reason R --approval ID`));
    const timed = await runCli(['admit', code, '--timeout', '1ms'], env, 60_000);
    assert.equal(timed.code, 3, 'still parked: waiting for a human');
  });

  test('a refused decision comes back to the caller and never reaches history', async () => {
    const code = freshCode();
    const { result } = await admitByCode(h.client, { code }, { taskQueue: h.taskQueue, wait: true });
    assert.equal(result?.stage, 'FINALIZED');
    // Finished: the workflow cannot take updates any more; the client says so instead of exit 0.
    const cli = await runCli(['retry', code], env, 60_000);
    assert.notEqual(cli.code, 0, cli.stdout);

    const parked = parkingCode();
    const a = await admitByCode(h.client, { code: parked }, { taskQueue: h.taskQueue, wait: true });
    assert.equal(a.parked?.stage, 'BLOCKED');
    const handle = h.client.workflow.getHandle(admissionWorkflowId('dot_tools', parked));
    // Parked, it re-reads its stop-conditions once (an activity): let that settle first.
    let before = await historyLength(parked);
    for (let n = -1; n !== before; ) {
      await new Promise((r) => setTimeout(r, 750));
      n = before;
      before = await historyLength(parked);
    }
    // A bare break-glass (no ledger entry) and one for another park are refused by the validator.
    await refused(handle.executeUpdate(breakGlassUpdate, { args: [{ ...operator, approvalId: 'APR-1' }] }), /needs its ledger entry/);
    await refused(handle.executeUpdate(breakGlassUpdate, { args: [{ ...operator, approvalId: 'APR-1', breakGlassId: '1', parkEpoch: 7 }] }),
      /answers park 7, the admission is now in park 1/);
    await refused(handle.executeUpdate(retryUpdate, { args: [{ actor: '' }] }), /invalid retry/);
    assert.equal(await historyLength(parked), before, 'refused updates leave no history');
    // The CLI turns a refusal into exit 3 and the reason.
    const bare = await runCli(['break-glass', parked, '--actor', 'a', '--reason', 'r', '--approval', 'X', '--collection', 'entity_species'], env, 60_000);
    assert.equal(bare.code, 2, `${bare.stdout}${bare.stderr}`); // no admission of that code in entity_species: refused input
    // An accepted retry answers once the workflow acted on it; it parks again (same blockers).
    const ack = await retry(h.client, { code: parked }, { actor: operator.actor, reason: 'look again' });
    assert.deepEqual([ack.accepted, ack.note], [true, 'preflight re-run']);
    const reparked = await eventually(async () => {
      const s = (await status(h.client, { code: parked })).state;
      return s?.stage === 'BLOCKED' && s.parkEpoch === 2 ? s : undefined;
    }, 'parked again, second park');
    assert.deepEqual(reparked.decisions.map((d) => [d.kind, d.accepted]), [['retry', true]]);
    // Cancel through the CLI: accepted, exit 0; a second one is refused with exit 3.
    const cancelled = await runCli(['cancel', parked, '--reason', 'drill over'], env, 60_000);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    const again = await runCli(['cancel', parked, '--reason', 'twice'], env, 60_000);
    assert.notEqual(again.code, 0);
  });

  test('a second admit with other fields for a running admission is refused (exit 2), naming the difference', async () => {
    const code = parkingCode();
    await admitByCode(h.client, { code, fields: { category: 'first' } }, { taskQueue: h.taskQueue, wait: true });
    await new Promise((r) => setTimeout(r, 1_100)); // started before the second call
    await assert.rejects(admitByCode(h.client, { code, fields: { category: 'second' } }, { taskQueue: h.taskQueue }),
      /already running with other fields \(category\)/);
    const cli = await runCli(['admit', code, '--field', 'category=third'], env, 60_000);
    assert.equal(cli.code, 2, cli.stdout);
    assert.match(cli.stderr, /other fields \(category\)/);
    // The same fields attach as before.
    const same = await admitByCode(h.client, { code, fields: { category: 'first' } }, { taskQueue: h.taskQueue });
    assert.equal(same.running, true);
  });

  test('after a rollback of a finalized admission, status and admit report ROLLED_BACK, never FINALIZED', async () => {
    const code = freshCode();
    const { result } = await admitByCode(h.client, { code }, { taskQueue: h.taskQueue, wait: true });
    const r = await rollback(h.client, { code }, { actor: operator.actor, reason: 'undo' }, { taskQueue: h.taskQueue });
    assert.equal(r.stage, 'ROLLED_BACK');
    const s = await status(h.client, { code });
    assert.equal(s.rolledBack?.birthId, result!.birthId);
    const again = await admitByCode(h.client, { code }, { taskQueue: h.taskQueue, wait: true });
    assert.equal(again.result, undefined);
    assert.equal(again.rolledBack?.birthId, result!.birthId);
    const cli = await runCli(['admit', code, '--wait'], env, 60_000);
    assert.equal(cli.code, 1);
    assert.match(cli.stdout, /ROLLED_BACK: .* birth \d+ retired/);
    assert.deepEqual((await written(h.db.pool, code)).births.map((b) => b.status), ['retired']);
  });

  test('under any other workflow id than its derived one the admission refuses to run (no second admission of a code)', async () => {
    const code = freshCode();
    const rogue = h.client.workflow.getHandle((await h.client.workflow.start('dotBirthAdmit', {
      taskQueue: h.taskQueue, workflowId: `rogue-${code}`, args: [{ code }],
    })).workflowId);
    await assert.rejects(rogue.result(), (err: WorkflowFailedError) => {
      assert.equal((err.cause as ApplicationFailure).type, 'INVALID_INPUT');
      assert.match(err.cause!.message, new RegExp(`runs only as dot-birth-admit:dot_tools:${code}, not rogue-${code}`));
      return true;
    });
    assert.deepEqual(await written(h.db.pool, code), { rows: 0, births: [], permits: [], breakGlass: 0 });
  });

  test('a code already born (outside any admission this server remembers) is refused with its birth (exit 2), nothing written', async () => {
    // Born through the SQL API directly — as if its admission's history had passed its retention.
    const code = freshCode();
    const { rows: [p] } = await h.db.pool.query<{ permit_id: string }>(
      `SELECT permit_id::text FROM fn_permit_issue($1, $2, 'dot_tools', 600, 'test', NULL, NULL)`, [`direct:${code}`, code]);
    const { rows: [row] } = await h.db.pool.query<{ row_id: string }>(`SELECT row_id::text FROM fn_admission_insert_dot_tools($1::bigint, '{}'::jsonb)`, [p!.permit_id]);
    const before = await written(h.db.pool, code);
    assert.equal(before.births.length, 1);
    const cli = await runCli(['admit', code, '--wait'], env, 60_000);
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, new RegExp(`dot_tools/${code} is already born: birth ${before.births[0]!.id} \\(born\\), row ${row!.row_id}`));
    assert.deepEqual(await written(h.db.pool, code), before, 'no permit requested, nothing inserted');
    await assert.rejects(h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).result(), (err: WorkflowFailedError) => {
      assert.equal((err.cause?.cause as ApplicationFailure | undefined)?.type, 'ALREADY_BORN');
      return true;
    });
  });

  test('a database without the admission API parks the birth on packet_incomplete (hard), and a retry after the repair admits it', async () => {
    await h.db.pool.query('ALTER FUNCTION fn_admission_preflight(text, text) RENAME TO fn_admission_preflight_away');
    const code = freshCode();
    try {
      const r = await runCli(['admit', code, '--wait'], env, 60_000);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stdout, /blocker packet_incomplete \(hard: no break-glass\): the admission API is missing here/);
      assert.deepEqual(await written(h.db.pool, code), { rows: 0, births: [], permits: [], breakGlass: 0 }, 'no permit without the API');
    } finally {
      await h.db.pool.query('ALTER FUNCTION fn_admission_preflight_away(text, text) RENAME TO fn_admission_preflight');
    }
    // The repair is DDL on a governed function: gate_drift until the owner accepts it.
    assert.equal(await rebaseline(h.db.pool, 'test: preflight function restored'), 0);
    await retry(h.client, { code }, operator);
    const { result } = await admitByCode(h.client, { code }, { taskQueue: h.taskQueue, wait: true });
    assert.equal(result?.stage, 'FINALIZED');
    assert.equal((await written(h.db.pool, code)).rows, 1);
  });

  test('admit with no worker polling the task queue says so at once', async () => {
    await assert.rejects(admitByCode(h.client, { code: freshCode() }, { taskQueue: `${h.taskQueue}-nobody`, requireWorker: true }), NoWorkerError);
    const cli = await runCli(['admit', freshCode(), '--wait'], { ...env, BIRTHGATE_TASK_QUEUE: `${h.taskQueue}-nobody` }, 60_000);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /no worker polls task queue/);
  });
});
