// The contracts preloaded into the workflow bundle (workflows/preload.ts, workers/admission-worker.ts
// PRELOADED_MODULES) keep working once the SDK has deep-frozen them. The SDK freezes every module the
// preload evaluated, walking each object's own properties (getters read) and freezing bottom-up; a zod
// schema that builds something on first use, or writes to its pattern, would then throw inside a workflow
// task, where the worker retries it forever. Here the same freeze is applied in-process to every export
// of the preloaded contracts (test/support/preload-freeze.ts), and every schema is then parsed with
// good and bad input: in a process with zod/mini alone, as in the bundle, and in this one.
//
// The saved-history replay (test/saved-histories.test.ts) and every admission test run the same
// preload inside the SDK's real reusable V8 context; this file makes each schema's failure name itself.
// Pure: no servers. The freeze is irreversible, so this file freezes its own process only.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as z from 'zod/mini';
import { projectRoot } from '../config/index.ts';
import { bundleAdmissionWorkflows, PRELOADED_MODULES } from '../workers/admission-worker.ts';
import { runFresh, runFreshScript } from './support/fresh-process.ts';
import { BAD, freezeAndProbe, type FreezeReport, GOOD } from './support/preload-freeze.ts';

describe('preloaded contracts, frozen as the SDK freezes them', () => {
  test('the worker preloads workflows/preload.ts, and the bundle carries it', async () => {
    assert.deepEqual(PRELOADED_MODULES.map((p) => p.slice(projectRoot.length + 1)), ['workflows/preload.ts']);
    const { code } = await bundleAdmissionWorkflows();
    const body = code.slice(code.indexOf('function preloadModules()'), code.indexOf('function importWorkflows()'));
    assert.match(body, /__webpack_require__\([^)]*"\.\/workflows\/preload\.ts"\)/, 'the bundle preloads workflows/preload.ts');
  });

  const expectClean = (r: FreezeReport, where: string) => {
    assert.deepEqual(r.threw, [], `${where}: a frozen schema threw`);
    assert.deepEqual(r.unfrozen, [], `${where}: every schema was frozen`);
    assert.deepEqual(r.wrong, [], `${where}: frozen schemas answer as before`);
    for (const name of [...Object.keys(GOOD), ...Object.keys(BAD)]) assert.ok(r.checked.includes(name), `${where}: ${name} was checked`);
    assert.ok(r.checked.length >= 30, `${where}: schemas checked: ${r.checked.length}`);
  };

  test('as in the workflow bundle (zod/mini alone): every schema parses after the freeze, good input passes, bad fails', () => {
    const r = runFresh(['test/support/preload-freeze.ts'], 60_000);
    assert.equal(r.status, 0, r.stderr);
    expectClean(JSON.parse(r.stdout) as FreezeReport, 'zod/mini alone');
  });

  test('with classic zod loaded too (its cycle memoizer rewrites a parse path on first use): the same', () => {
    // This process has classic zod (config/, activities/): stricter than the bundle, which has none.
    expectClean(freezeAndProbe(), 'classic zod loaded');
  });

  test('the check can fail: a schema frozen without the preload walk breaks on its first parse', () => {
    // A fresh process: this one's contracts are frozen already.
    const r = runFreshScript([
      "import * as z from 'zod/mini';",
      "import { sdkDeepFreeze } from './test/support/preload-freeze.ts';",
      "const s = z.string().check(z.regex(/^[0-9]+$/));",
      'sdkDeepFreeze(s);',
      "try { s.safeParse('12'); process.stdout.write('parsed'); } catch (e) { process.stdout.write(String(e.message)); }",
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /not extensible|read only/, `an unprepared frozen schema failed: ${r.stdout}`);
    // and zod/mini imported here is the one the contracts use
    assert.equal(typeof z.string, 'function');
  });
});
