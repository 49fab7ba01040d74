// The admission worker's workflow bundle stays free of classic zod (issue 8 §6). The SDK evaluates every
// module of the bundle afresh for each workflow run (reuseV8Context keeps a per-run module cache), so
// what the bundle holds is paid on every admission: classic zod cost 12–19 ms of worker CPU per
// admission, zod/mini 1–2 ms. Workflow code and the contracts it imports use `zod/mini`; this test
// fails, naming the importer, when classic zod comes back. Pure: webpack only, no servers.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { bundleAdmissionWorkflows } from '../workers/admission-worker.ts';
import { packetBundle } from '../workers/packet-worker.ts';
import { runFreshScript } from './support/fresh-process.ts';

const WHY =
  'classic zod in the admission workflow bundle: the SDK evaluates every bundled module on each workflow run, ' +
  'and classic zod costs ~12–19 ms of worker CPU per admission (zod/mini ~1–2 ms). In workflow code and in ' +
  "what it imports (contracts/admission.ts, workflows/*), use `import * as z from 'zod/mini'` (issue 8 §6).";

/** Classic zod's modules (zod 4 classic, zod 3 under zod/v3 or the old zod/lib) by webpack module id. */
const CLASSIC_MODULE = /node_modules\/zod\/(v4\/classic|v3|lib)\//;
/** Classic's own schema class name: survives a bundle whose module ids are hashed instead of paths. */
const CLASSIC_CLASS = /["']ZodString["']/;

type Modules = Map<string, { requires: string[] }>;

/** The bundle's modules and what each requires, from webpack's `/***\/ "id"` module headers. */
function modulesOf(code: string): Modules {
  const out: Modules = new Map();
  const headers = [...code.matchAll(/^\/\*{3}\/ "([^"]+)"\s*$/gm)];
  headers.forEach((h, i) => {
    const body = code.slice(h.index, headers[i + 1]?.index ?? code.length);
    out.set(h[1]!, { requires: [...body.matchAll(/__webpack_require__\((?:\/\*![^*]*\*\/\s*)?"([^"]+)"\)/g)].map((m) => m[1]!) });
  });
  return out;
}

/** Which classic modules are in, and which project files bring them (a direct import of a library path that leads to classic). */
function classicIn(code: string): { classic: string[]; importers: string[]; marker: boolean } {
  const modules = modulesOf(code);
  const leads = new Map<string, boolean>();
  const reaches = (id: string, seen = new Set<string>()): boolean => {
    if (CLASSIC_MODULE.test(id)) return true;
    if (leads.has(id)) return leads.get(id)!;
    if (seen.has(id)) return false;
    seen.add(id);
    const r = (modules.get(id)?.requires ?? []).some((d) => reaches(d, seen));
    leads.set(id, r);
    return r;
  };
  const own = (id: string) => !id.includes('node_modules');
  const importers = [...modules].filter(([id, m]) => own(id) && m.requires.some((d) => !own(d) && reaches(d))).map(([id]) => id);
  return { classic: [...modules.keys()].filter((id) => CLASSIC_MODULE.test(id)), importers, marker: CLASSIC_CLASS.test(code) };
}

describe('the admission workflow bundle', { timeout: 90_000 }, () => {
  let admission: string;
  before(async () => {
    admission = (await bundleAdmissionWorkflows()).code;
  });

  test('holds no classic zod (CPU per admission)', () => {
    const found = classicIn(admission);
    assert.deepEqual(found.importers, [], `${WHY}\nimported by: ${found.importers.join(', ')}\nclassic modules: ${found.classic.join(', ')}`);
    assert.deepEqual(found.classic, [], `${WHY}\nclassic modules: ${found.classic.join(', ')}`);
    assert.equal(found.marker, false, `${WHY}\n(classic's ZodString class is in the bundle)`);
  });

  test('validates with zod/mini: the guard looks at real module ids', () => {
    // Without this, a bundler that renamed its modules would let the test above pass on anything.
    const ids = [...modulesOf(admission).keys()];
    assert.ok(ids.includes('./contracts/admission.ts'), `module ids are paths (${ids.slice(0, 3).join(', ')} …)`);
    assert.ok(ids.some((id) => /node_modules\/zod\/v4\/mini\//.test(id)), 'zod/mini is in the bundle');
  });

  test('the same guard finds classic zod in the packet bundle, which uses it, and names its importers', async () => {
    // The packet workflows (workers/packet-workflows.ts) keep classic zod in their own bundle: they run
    // once per apply, not per admission. They prove the detector can fail.
    const { code } = (await packetBundle()) as { code: string };
    const found = classicIn(code);
    assert.ok(found.classic.length > 0 && found.marker, 'classic zod found in the packet bundle');
    assert.ok(found.importers.includes('./contracts/packet.ts'), `importers named: ${found.importers.join(', ')}`);
  });
});

describe('the contract without classic zod', () => {
  test('speaks English: built-in refusals read as they did under classic zod, not "Invalid input"', () => {
    // zod/mini configures no locale; the workflow bundle has no classic zod to configure one, so the
    // contract does. A fresh process that loads the contract alone, as the bundle does.
    const r = runFreshScript([
      "const { AdmissionInput, describeIssues } = await import('./contracts/admission.ts');",
      "const r = AdmissionInput.safeParse({ code: 'DOT-1', permitTtlSeconds: 5, historyBudget: 1.5, fields: { Bad: 1 }, extra: 1 });",
      'process.stdout.write(describeIssues(r.error));',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout,
      'fields.Bad: Invalid key in record: field names are lower-case column names; permitTtlSeconds: Too small: expected number to be >=30; ' +
        'historyBudget: Invalid input: expected int, received number; Unrecognized key: "extra"',
    );
  });
});
