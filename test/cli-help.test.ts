// `birthgate` as a user meets it (issue 10 §7): every registered verb — enumerated from the loaded
// command modules, so a new verb is covered the day it is added — answers --help with its usage, an
// example and the exit codes; one bad invocation per verb (its own first example plus an unknown
// option) and the usual invalid arguments are refused with exit 2, say why on stderr, and change
// nothing: not the database (ledger, permits, births, catalog), not Temporal (workflows, schedules),
// not BIRTHGATE_HOME. The read verbs' --json is exactly one JSON value on stdout, errors included.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { admitByCode } from '../client/admissions.ts';
import { governanceHandoffWorkflowId } from '../client/handoff.ts';
import { readEstate } from '../client/packet.ts';
import { scheduleId } from '../client/schedules.ts';
import { EXIT_LEGEND, type Command } from '../cli/command.ts';
import { loadCommands } from '../cli/main.ts';
import { admissionWorkflowId, rollbackWorkflowId } from '../contracts/admission.ts';
import { packetRollbackWorkflowId, packetTaskQueue, packetWorkflowId, type Estate } from '../contracts/packet.ts';
import { catalogFingerprint } from '../packet/fingerprint.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { WORKER_PASSWORD } from './support/admission-world.ts';
import { runCli, type CliResult } from './support/cli.ts';
import { admissionState } from './support/packet-world.ts';
import { testEnv } from './support/env.ts';

const commands: Command[] = await loadCommands();
const names = [...new Set(commands.map((c) => c.name))];

/** An example's words as a shell would split them (double quotes group; a trailing `# …` is a comment). */
function words(example: string): string[] {
  const out: string[] = [];
  let word: string | undefined;
  let quoted = false;
  for (const ch of example.replace(/\s+#.*$/, '')) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && /\s/.test(ch)) {
      if (word !== undefined) out.push(word);
      word = undefined;
      continue;
    }
    word = (word ?? '') + (ch === '"' ? '' : ch);
  }
  if (word !== undefined) out.push(word);
  return out;
}

/** At most two CLI processes at a time: the machine has two cores and other test files run too. */
async function inPairs<T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  };
  await Promise.all([lane(), lane()]);
  return out;
}

/** Every file under dir, with its size: a verb that wrote a bundle, a log or a state file shows here. */
function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => { const p = path.join(e.parentPath, e.name); return `${path.relative(dir, p)}:${fs.statSync(p).size}`; })
    .sort();
}

describe('birthgate: help, exit codes and --json for every verb', () => {
  let h: AdmissionHarness;
  let env: NodeJS.ProcessEnv;
  let estate: Estate;
  let born: { code: string; permitId: string; birthId: string };
  const home = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'cli-help-'));

  before(async () => {
    h = await admissionHarness('cli_help');
    estate = await readEstate(h.db.pool);
    env = {
      ...process.env,
      DATABASE_URL: h.db.url,
      TEMPORAL_ADDRESS: testEnv().temporalAddress,
      BIRTHGATE_HOME: home,
      BIRTHGATE_TASK_QUEUE: h.taskQueue,
      BIRTHGATE_WORKER_PASSWORD: WORKER_PASSWORD,
      BIRTHGATE_LOG_FORMAT: 'text',
    };
    delete env.BIRTHGATE_OPERATOR_DATABASE_URL;
    delete env.BIRTHGATE_WORKER_DATABASE_URL;
    // One real admission, so `status CODE --json` has something to show.
    const code = freshCode();
    const { result } = await admitByCode(h.client, { code, fields: { name: `cli help ${code}` }, requestedBy: 'test' }, { taskQueue: h.taskQueue, wait: true });
    assert.equal(result?.stage, 'FINALIZED');
    born = { code, permitId: result.permitId, birthId: result.birthId };
  });
  after(async () => {
    await h?.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  /** Whatever a verb could change: the estate's rows and catalog, the ledger, Temporal's workflows and schedules, the home folder. */
  async function snapshot(client: Client): Promise<Record<string, unknown>> {
    const pool = h.db.pool;
    const ledgerTables = (await pool.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'birthgate_ledger' ORDER BY 1`)).rows.map((r) => r.t);
    const ledger: Record<string, number> = {};
    for (const t of ledgerTables) ledger[t] = (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM birthgate_ledger.${t}`)).rows[0]!.n;
    const drift = (await pool.query(`SELECT (SELECT count(*)::int FROM birth_drift_rebaseline) AS rebaselines, (SELECT count(*)::int FROM birth_drift_finding) AS findings`)).rows[0];
    const described: Record<string, string | null> = {};
    const ids = [
      packetWorkflowId(estate), packetRollbackWorkflowId(estate), governanceHandoffWorkflowId(h.taskQueue, estate.database),
      ...['DOT-1234', 'Tool_1234', born.code].flatMap((c) => [admissionWorkflowId('dot_tools', c), rollbackWorkflowId('dot_tools', c)]),
    ];
    for (const id of ids) described[id] = await client.workflow.getHandle(id).describe().then((d) => `${d.runId} ${d.status.name}`, () => null);
    const schedules: string[] = [];
    for await (const s of client.schedule.list()) if (s.scheduleId.startsWith(`${h.taskQueue}:`)) schedules.push(s.scheduleId);
    const counted = await client.workflow.count(`TaskQueue = '${h.taskQueue}' OR TaskQueue = '${packetTaskQueue(estate)}'`);
    return {
      rows: await admissionState(pool), ledger, drift, catalog: await catalogFingerprint(pool),
      workflows: described, workflowCount: counted.count, schedules: schedules.sort(), home: files(home),
    };
  }

  test('every verb declares examples that start with `birthgate <verb>`; internal verbs are the only ones left out of `birthgate help`', async () => {
    for (const c of commands) {
      assert.ok(c.examples.length >= 1, `${c.name}: at least one example`);
      for (const e of c.examples) assert.ok(e.startsWith(`birthgate ${c.name}`), `${c.name}: example "${e}" starts with birthgate ${c.name}`);
    }
    const overview = await runCli(['help'], env);
    assert.equal(overview.code, 0, overview.stderr);
    for (const c of commands) {
      const listed = overview.stdout.includes(`  ${c.usage}\n`);
      assert.equal(listed, !c.summary.startsWith('(internal)'), `birthgate help ${listed ? 'lists' : 'omits'} ${c.name}`);
    }
    for (const [code, text] of EXIT_LEGEND) assert.ok(overview.stdout.includes(`  ${code}  ${text}`), `the legend has exit ${code}`);
    const same = await runCli(['help', 'stuck'], env);
    assert.deepEqual([same.code, same.stdout], [0, (await runCli(['stuck', '--help'], env)).stdout], '`help stuck` is `stuck --help`');
    const unknown = await runCli(['no-such-verb'], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown verb "no-such-verb"[\s\S]*\nnext: `birthgate help` lists every verb/);
    assert.equal(unknown.stdout, '');
  });

  test('`birthgate <verb> --help` for every verb: usage, options, an example line, the exit-code legend', async () => {
    const results = await inPairs(names, (name) => runCli([...name.split(' '), '--help'], env, 60_000));
    names.forEach((name, i) => {
      const r = results[i]!;
      assert.equal(r.code, 0, `${name} --help: exit ${r.code}\n${r.stderr}`);
      assert.ok(r.stdout.includes(`usage: birthgate ${name}`), `${name} --help shows its usage`);
      const examples = r.stdout.split('\nexamples:\n').slice(1).flatMap((s) => s.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim()));
      assert.ok(examples.some((l) => l.startsWith(`birthgate ${name}`)), `${name} --help shows an example:\n${r.stdout}`);
      assert.match(r.stdout, /\noptions:\n[\s\S]*--json/, `${name} --help lists --json`);
      for (const [code, text] of EXIT_LEGEND) assert.ok(r.stdout.includes(`  ${code}  ${text}`), `${name} --help explains exit ${code}`);
    });
  });

  test('one bad invocation per verb, and the usual invalid arguments: exit 2, a message and a next step on stderr, nothing changed', async () => {
    const before = await snapshot(h.client);
    // Each verb's first example, as the user would type it, with an option no verb has.
    const bad: string[][] = commands.map((c) => [...words(c.examples[0]).slice(1), '--no-such-option']);
    bad.push(
      ['admit'], // CODE missing
      ['admit', 'DOT-1234', '--field', 'Not A Column=x'],
      ['admit', 'DOT-1234', '--collection', "dot_tools'; DROP TABLE dot_tools; --"],
      ['world', 'load', '--scale', 'huge', '--force'],
      ['apply', '--owner', 'someone'], // without --approval
      ['packet', 'stop'], // without --reason
      ['rollback', '--to', 'x'],
      ['break-glass', 'Tool_1234', '--actor', 'a', '--reason', 'r'], // without --approval
      ['stuck', '--older-than', 'a while'],
      ['stack', 'up', '--detach', '--temporal', 'cloud'],
      ['verify', 'extra'],
      ['status', 'DOT-1234', '--json=yes'],
    );
    const results: CliResult[] = await inPairs(bad, (argv) => runCli(argv, env, 60_000));
    bad.forEach((argv, i) => {
      const r = results[i]!;
      const what = `birthgate ${argv.join(' ')}`;
      assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^birthgate [^\n]+: \S.*\n(usage: birthgate .*\n)?next: \S/, `${what}: says what is wrong and what to do next\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+\)?\n/, `${what}: a message, not a stack trace`);
      if (argv.includes('--json')) assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'USAGE', `${what}: the JSON error`);
      else assert.equal(r.stdout, '', `${what}: nothing on stdout`);
    });
    assert.deepEqual(await snapshot(h.client), before, 'nothing written, nothing started, nothing built');
  });

  test('--json: the read verbs print exactly one JSON value on stdout; an error is {"error":{code,message,next}}', async () => {
    const before = await snapshot(h.client);
    const [stack, status, stuck, drift, schedules, verify, missing, usage] = await inPairs([
      ['stack', 'status', '--json'],
      ['status', born.code, '--json'],
      ['stuck', '--json'],
      ['drift', '--json'],
      ['schedules', '--json'],
      ['verify', '--json'],
      ['status', freshCode(), '--json'],
      ['admit', '--json'],
    ], (argv) => runCli(argv, env, 60_000));

    assert.equal(stack!.code, 0, stack!.stderr);
    const s = JSON.parse(stack!.stdout) as { running: boolean; engine: string; postgres: { ok: boolean }; temporal: { ok: boolean } };
    assert.deepEqual([s.running, s.engine, s.postgres.ok, s.temporal.ok], [true, 'external', true, true]);

    // The admission as the workflow reports it is the one the database holds.
    assert.equal(status!.code, 0, status!.stderr);
    const st = JSON.parse(status!.stdout) as { status: string; state: { stage: string; permit: { permitId: string }; birth: { birthId: string } } };
    assert.deepEqual([st.status, st.state.stage, st.state.permit.permitId, st.state.birth.birthId], ['COMPLETED', 'FINALIZED', born.permitId, born.birthId]);
    const w = await written(h.db.pool, born.code);
    assert.deepEqual([w.rows, w.births.map((b) => b.id), w.permits.map((p) => [p.permit_id, p.state])], [1, [born.birthId], [[born.permitId, 'FINALIZED']]]);

    assert.equal(stuck!.code, 0, stuck!.stderr);
    assert.ok(Array.isArray(JSON.parse(stuck!.stdout)), 'stuck --json is a list');
    assert.ok(!(JSON.parse(stuck!.stdout) as Array<{ code: string }>).some((b) => b.code === born.code), 'a finalized admission is not stuck');

    // No open finding here (the watch has not ticked), so exit 0; the report is the drift table's.
    assert.equal(drift!.code, 0, drift!.stderr);
    const d = JSON.parse(drift!.stdout) as { open: unknown[]; resolved: unknown[] };
    assert.deepEqual([d.open.length, d.resolved.length], [0, 0]);

    // Not created on this task queue: the list says so, exit 1, and stderr says how to create them.
    assert.equal(schedules!.code, 1, schedules!.stderr);
    const views = JSON.parse(schedules!.stdout) as Array<{ scheduleId: string; server: unknown }>;
    assert.deepEqual(views.map((v) => [v.scheduleId, v.server]), [[scheduleId(h.taskQueue, 'permit-expiry'), null], [scheduleId(h.taskQueue, 'drift-watch'), null]]);
    assert.match(schedules!.stderr, /next: `birthgate schedules apply`/);

    assert.equal(verify!.code, 0, verify!.stderr);
    assert.ok((JSON.parse(verify!.stdout) as { entryState: object }).entryState, 'verify --json carries the entry state');

    // Errors in --json mode: the same object for every verb, on stdout; the human line stays on stderr.
    assert.equal(missing!.code, 2, missing!.stderr);
    assert.deepEqual(Object.keys(JSON.parse(missing!.stdout) as object), ['error']);
    const e = (JSON.parse(missing!.stdout) as { error: { code: string; message: string; next: string } }).error;
    assert.equal(e.code, 'NOT_FOUND');
    assert.match(e.next, /birthgate stuck/);
    assert.match(missing!.stderr, /^birthgate status: no such admission/);
    assert.equal(usage!.code, 2);
    assert.deepEqual((JSON.parse(usage!.stdout) as { error: { code: string; message: string } }).error.code, 'USAGE');

    assert.deepEqual(await snapshot(h.client), before, 'the read verbs read');
  });

  test('user input is echoed bounded: control characters escaped, long values clipped', async () => {
    const escape = '\u001b[2J';
    const long = 'k'.repeat(5000);
    const [ctl, big, verb] = await inPairs([
      ['admit', 'DOT-1234', '--field', `a${escape}b=1`],
      ['admit', 'DOT-1234', '--field', `${long}=1`],
      [`x${escape}`],
    ], (argv) => runCli(argv, env, 60_000));
    for (const r of [ctl!, big!, verb!]) {
      assert.equal(r.code, 2, r.stderr);
      assert.ok(!r.stderr.includes('\u001b'), `no raw escape on stderr: ${JSON.stringify(r.stderr)}`);
      assert.ok(!r.stderr.includes('k'.repeat(100)), 'a long value is clipped');
      assert.ok(r.stderr.length < 2000, `bounded: ${r.stderr.length} characters`);
    }
    assert.match(ctl!.stderr, /fields\."a\\u001b\[2Jb": Invalid key in record/);
    assert.match(verb!.stderr, /unknown verb "x\\u001b\[2J"/);
  });
});

test('a reader that closes the pipe early (`birthgate stuck | head -1`) costs the rest of the output, not the verb\'s work or its exit code', async () => {
  const { spawn } = await import('node:child_process');
  // A verb's shape: a first line, then more output after the reader has gone, then its own exit code.
  const script = [
    "import { toleratePipeClose } from './cli/main.ts';",
    'toleratePipeClose(process.stdout);',
    "process.stdout.write('first line\\n');",
    'await new Promise((r) => setTimeout(r, 300));',
    "for (let i = 0; i < 2000; i++) process.stdout.write('x'.repeat(100) + '\\n');",
    "await new Promise((r) => setTimeout(r, 100));",
    "process.stderr.write('verb finished\\n');",
    'process.exitCode = 3;',
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  await new Promise<void>((resolve) => child.stdout.once('data', () => { child.stdout.destroy(); resolve(); }));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 3, err);
  assert.match(err, /verb finished/);
  assert.doesNotMatch(err, /EPIPE/);
});
