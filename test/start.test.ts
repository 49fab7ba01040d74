// `npm start` (`birthgate start`), the project's main job, on the embedded defaults: it brings up its
// own PostgreSQL 16 and Temporal dev server in a fresh BIRTHGATE_HOME, loads the test-scale world,
// applies the packet, runs the worker, creates the Schedules and the governance handoff, walks through
// one clean admission and one stuck birth, and (with --once) stops everything it started. A second run
// on the same home finds the estate and the packet in place and attaches to the admission it made.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isAlive } from '../stack/postgres.ts';
import { freePort } from '../stack/ports.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';

let home: string;
let childEnv: NodeJS.ProcessEnv;

type StartReport = {
  temporalAddress: string;
  taskQueue: string;
  packet: { runId: string; applied: number };
  schedules: Array<{ scheduleId: string; outcome: string }>;
  handoff: { workflowId: string; started: boolean };
  clean: { code: string; permitId: string | null; rowId: string | null; birthId: string | null; attached: boolean; url: string | null };
  stuck: { code: string; stage: string | null };
  serving: boolean;
};

before(async () => {
  const scratch = process.env.BIRTHGATE_TEST_SCRATCH ?? fs.mkdtempSync('/tmp/bg-start-');
  home = path.join(scratch, `start-${process.pid}`);
  childEnv = {
    ...process.env,
    BIRTHGATE_HOME: home,
    BIRTHGATE_PG_PORT: String(await freePort()),
    BIRTHGATE_TEMPORAL_PORT: String(await freePort()),
    BIRTHGATE_UI_PORT: String(await freePort()),
    TEMPORAL_CLI: testEnv().temporalCli,
  };
  // The embedded defaults: no external servers.
  delete childEnv.DATABASE_URL;
  delete childEnv.TEMPORAL_ADDRESS;
});

after(async () => {
  await runCli(['stack', 'down'], childEnv); // only if a run failed half way
});

/** The pids a stack state file names (postgres, temporal, supervisor), for the leftover check. */
function pidsUnder(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.pid') || e.name === 'postmaster.pid') {
        const pid = Number(fs.readFileSync(f, 'utf8').split('\n')[0]);
        if (Number.isInteger(pid) && pid > 0) out.push(pid);
      }
    }
  };
  walk(dir);
  return out;
}

test('birthgate start --once --json: estate, packet, worker, schedules, handoff, a clean admission and a stuck birth; then nothing left running; a second run attaches', async () => {
  const first = await runCli(['start', '--once', '--json'], childEnv, 600_000);
  assert.equal(first.code, 0, `start failed:\n${first.stderr.slice(-4000)}`);
  const r = JSON.parse(first.stdout) as StartReport;
  assert.equal(r.serving, false);
  assert.ok(r.packet.applied > 0, 'a fresh home applies the packet');
  assert.deepEqual(r.schedules.map((s) => s.outcome).sort(), r.schedules.map(() => 'created'), 'every Schedule created');
  assert.ok(r.schedules.length >= 2, 'the expiry sweep and the drift watch at least');
  assert.match(r.handoff.workflowId, /handoff/);
  assert.equal(r.handoff.started, true);
  assert.match(r.clean.permitId ?? '', /^[1-9][0-9]*$/, 'the clean admission was born under a permit');
  assert.match(r.clean.rowId ?? '', /^[1-9][0-9]*$/);
  assert.match(r.clean.birthId ?? '', /^[1-9][0-9]*$/);
  assert.equal(r.clean.attached, false);
  assert.equal(r.stuck.stage, 'BLOCKED', 'the off-rule code parks as a stuck birth');
  // stdout is the one JSON value; the tour went to stderr.
  assert.match(first.stderr, /a stuck birth/);
  // --once stopped what it started: no state file, no live process of its stack.
  const pids = pidsUnder(home);
  for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} of the stack is still alive`);
  assert.equal(fs.existsSync(path.join(home, 'stack.json')), false, 'the stack state file is gone');

  // Again on the same home: the estate and the packet are found, the clean code's admission attaches.
  const second = await runCli(['start', '--once', '--json'], childEnv, 600_000);
  assert.equal(second.code, 0, `second start failed:\n${second.stderr.slice(-4000)}`);
  const r2 = JSON.parse(second.stdout) as StartReport;
  assert.equal(r2.packet.applied, 0, 'nothing left to apply');
  assert.equal(r2.clean.attached, true, 'the clean code was admitted before: attached, not born twice');
  assert.equal(r2.clean.birthId, r.clean.birthId);
  assert.equal(r2.clean.permitId, r.clean.permitId);
  assert.equal(r2.handoff.started, false, 'the handoff is already running');
  assert.match(second.stderr, /estate present/);
});
