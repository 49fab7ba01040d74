// Issue 10 §6, DOTs in any language: the committed JSON Schema (contracts/wire/admission.schema.json)
// is exactly what the zod contract generates, and an admission can be driven end to end with the
// `temporal` CLI as the only client — start under the derived id, wait, read the result; a parked one
// queried, broken open through the update (after the operator's ledger entry), born. Real dev server,
// real PostgreSQL, the real admission worker.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { projectRoot } from '../config/index.ts';
import { admissionWorkflowId, AdmissionResult, DecisionAck } from '../contracts/admission.ts';
import { wireContractJson } from '../contracts/wire.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { testEnv } from './support/env.ts';
import { eventually } from './support/temporal.ts';

const run = promisify(execFile);

describe('the wire contract', () => {
  test('contracts/wire/admission.schema.json is what the zod contract generates (npm run contract)', () => {
    const committed = fs.readFileSync(path.join(projectRoot, 'contracts', 'wire', 'admission.schema.json'), 'utf8');
    assert.equal(committed, wireContractJson(), 'the committed wire contract is stale: run `npm run contract`');
    const j = JSON.parse(committed) as { $defs: Record<string, { required?: string[]; properties?: Record<string, { maxLength?: number }> }> };
    assert.deepEqual(j.$defs.AdmissionInput!.required, ['code']);
    assert.equal(j.$defs.AdmissionInput!.properties!.code!.maxLength, 200);
    assert.deepEqual(j.$defs.BreakGlassSignal!.required, ['actor', 'reason', 'approvalId']);
  });
});

describe('an admission driven by the temporal CLI alone', () => {
  let h: AdmissionHarness;
  let temporal: (...args: string[]) => Promise<unknown>;
  before(async () => {
    h = await admissionHarness('wire');
    const env = testEnv();
    temporal = async (...args: string[]) => {
      const { stdout } = await run(env.temporalCli, [...args, '--address', env.temporalAddress, '--namespace', env.namespace, '-o', 'json'], { timeout: 60_000 });
      return JSON.parse(stdout) as unknown;
    };
  });
  after(async () => h?.stop());

  const start = (code: string) =>
    temporal('workflow', 'start', '--type', 'dotBirthAdmit', '--task-queue', h.taskQueue,
      '--workflow-id', admissionWorkflowId('dot_tools', code), '--id-conflict-policy', 'UseExisting',
      '--search-attribute', `EntityCode="${code}"`, '--input', JSON.stringify({ code, requestedBy: 'cli-dot' }));
  const resultOf = async (code: string) => {
    const out = (await temporal('workflow', 'result', '--workflow-id', admissionWorkflowId('dot_tools', code))) as { status: string; result: unknown };
    assert.equal(out.status, 'COMPLETED', JSON.stringify(out));
    return AdmissionResult.parse(out.result);
  };
  // Read as a non-TypeScript client would: the fields it needs (the CLI re-encodes the payload, and
  // prints an empty array as null).
  type CliState = { stage: string; parkEpoch: number; permit: { permitId: string } | null; blockers: { kind: string }[] | null };
  const stateOf = async (code: string) =>
    ((await temporal('workflow', 'query', '--workflow-id', admissionWorkflowId('dot_tools', code), '--name', 'state')) as { queryResult: CliState[] }).queryResult[0]!;

  test('start under the derived id, wait, read the result: born once', async () => {
    const code = freshCode();
    await start(code);
    await start(code); // a second start attaches (UseExisting): still one admission
    const result = await resultOf(code);
    assert.equal(result.code, code);
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 1);
    assert.deepEqual(w.permits.map((p) => [p.permit_id, p.state, p.row_id, p.birth_id]), [[result.permitId, 'FINALIZED', result.rowId, result.birthId]]);
  });

  test('a parked admission: queried, broken open through the update after the ledger entry, born', async () => {
    const code = `DOT_WIRE_${freshCode().slice(4)}`; // outside the dot_tools code rule: it parks
    await start(code);
    const parked = await eventually(async () => {
      const s = await stateOf(code).catch(() => undefined);
      return s?.stage === 'BLOCKED' && s.permit ? s : undefined;
    }, 'BLOCKED with its permit');
    assert.equal(parked.blockers?.[0]?.kind, 'code_rule');
    // The operator's act in the database first (role birthgate_operator; the test superuser is one).
    const { rows: [entry] } = await h.db.pool.query<{ id: string }>(
      'SELECT (fn_break_glass_open($1, $2, $3, $4, $5, $6::bigint, $7)).break_glass_id::text AS id',
      [code, 'dot_tools', 'ops@wire.test', 'wire drill', 'WIRE-1', parked.permit!.permitId, admissionWorkflowId('dot_tools', code)]);
    // A refused update comes back as an error of the CLI (the wrong park), and changes nothing.
    await assert.rejects(temporal('workflow', 'update', 'execute', '--workflow-id', admissionWorkflowId('dot_tools', code), '--name', 'breakGlassAdmission',
      '--input', JSON.stringify({ actor: 'ops@wire.test', reason: 'wire drill', approvalId: 'WIRE-1', breakGlassId: entry!.id, parkEpoch: parked.parkEpoch + 5 })));
    const ack = DecisionAck.parse(((await temporal('workflow', 'update', 'execute', '--workflow-id', admissionWorkflowId('dot_tools', code), '--name', 'breakGlassAdmission',
      '--input', JSON.stringify({ actor: 'ops@wire.test', reason: 'wire drill', approvalId: 'WIRE-1', breakGlassId: entry!.id, parkEpoch: parked.parkEpoch }))) as { result: unknown }).result);
    assert.equal(ack.accepted, true, ack.note);
    const result = await resultOf(code);
    assert.equal(result.breakGlass, true);
    assert.equal(result.breakGlassId, entry!.id);
    const w = await written(h.db.pool, code);
    assert.deepEqual({ rows: w.rows, births: w.births.length, breakGlass: w.breakGlass, permits: w.permits.map((p) => [p.state, p.break_glass]) },
      { rows: 1, births: 1, breakGlass: 1, permits: [['FINALIZED', true]] });
  });
});
