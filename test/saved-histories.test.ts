// Issue 8 "Versioning": births park for days, so a deploy happens under running admissions. Every
// history saved in test/histories/ — captured from real runs of this and earlier versions
// (scripts/capture-histories.ts) — must replay against the current workflow bundle without a
// nondeterminism error. An incompatible change to the command sequence fails here unless it is
// behind patched() (workflows/README.md).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { projectRoot } from '../config/index.ts';
import { workflowBundle } from './support/temporal.ts';

const root = path.join(projectRoot, 'test', 'histories');
type Saved = { file: string; workflowId: string; history: { events: unknown[] } };

function saved(folder: string): Saved[] {
  const dir = path.join(root, folder);
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => {
    const j = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Omit<Saved, 'file'>;
    return { file: `${folder}/${f}`, ...j };
  });
}

describe('saved histories replay against the current bundle', () => {
  const folders = fs.readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

  test('there are histories from before issue 8 and from now, every scenario', () => {
    // before-issue-8: ef5ece6; before-lean-admission: the issue-8 workflow before its steps went local;
    // before-open-admission: the lean admission before its first check reserved the permit too.
    assert.deepEqual(folders, ['before-issue-8', 'before-lean-admission', 'before-open-admission', 'current']);
    const scenarios = (f: string) => [...new Set(saved(f).map((s) => s.file.replace(/^.*\//, '').replace(/(-\d)?-run\d+\.json$/, '')))].sort();
    const base = ['attach', 'cancel', 'clean', 'compensation-failed', 'rollback-after-finalized', 'rollback-while-parked', 'stuck-retry-break-glass'];
    assert.deepEqual(scenarios('before-issue-8'), base);
    assert.deepEqual(scenarios('before-lean-admission'), [...base, 'continue-as-new'].sort());
    assert.deepEqual(scenarios('before-open-admission'), [...base, 'continue-as-new'].sort());
    assert.deepEqual(scenarios('current'), [...base, 'continue-as-new'].sort());
    assert.ok(saved('current').filter((s) => s.file.includes('continue-as-new')).length >= 3, 'several runs of the continued admission');
  });

  for (const folder of folders) {
    test(`${folder}: every history replays without a nondeterminism error`, async () => {
      const histories = saved(folder);
      const replayed: string[] = [];
      const bundle = await workflowBundle();
      for (const h of histories) {
        // one at a time, so a failure names its file
        for await (const r of Worker.runReplayHistories({ workflowBundle: bundle }, [{ workflowId: h.workflowId, history: h.history as never }])) {
          assert.equal(r.error, undefined, `${h.file}: ${r.error?.message}`);
          replayed.push(h.file);
        }
      }
      assert.equal(replayed.length, histories.length);
    });
  }
});
