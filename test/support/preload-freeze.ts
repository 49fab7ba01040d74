// Freeze the preloaded contracts the way the SDK freezes preloaded modules, then parse every schema
// (test/workflow-preload.test.ts). Run as a script it imports nothing but the contracts and the preload
// — zod/mini alone, as in the workflow bundle — and prints what it found as JSON.
import { materializeSchemas, PRELOADED_CONTRACTS } from '../../workflows/preload.ts';

/** What the SDK's reusable VM does to preloaded modules (worker/lib/workflow/reusable-vm.ts deepFreeze). */
export function sdkDeepFreeze(o: unknown, seen = new WeakSet<object>()): void {
  if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) return;
  seen.add(o);
  if (Object.isFrozen(o)) return;
  if (typeof o === 'object') {
    for (const k of Reflect.ownKeys(o)) {
      try {
        sdkDeepFreeze((o as Record<PropertyKey, unknown>)[k], seen);
      } catch {
        // the SDK skips what cannot be frozen
      }
    }
  }
  Object.freeze(o);
}

type Schema = { safeParse: (v: unknown) => { success: boolean } };
const isSchema = (v: unknown): v is Schema => typeof v === 'object' && v !== null && typeof (v as Schema).safeParse === 'function';

/** Inputs every schema gets: of every JSON type, and strings that reach the regex and format checks. */
const PROBES: unknown[] = [undefined, null, true, 0, -1, 1.5, '', 'x', '12', 'DOT-1', '2026-11-30T06:00:00.000Z', 'not a time', [], [1], {}, { a: 1 }];
/** Known-good values: a frozen schema must still accept what it accepted before. */
export const GOOD: Record<string, unknown> = {
  AdmissionInput: { code: 'DOT-123456', requestedBy: 'test' },
  DbId: '42',
  EntityCode: 'DOT-1',
  RetrySignal: { actor: 'ops' },
  StageTransition: { stage: 'PREFLIGHT', at: '2026-11-30T06:00:00.000Z', note: 'n' },
  GovernanceHandoffInput: { database: 'estate' },
};
/** Known-bad values that fail on a regex or format check (the path that resets `lastIndex`). */
export const BAD: Record<string, unknown> = {
  DbId: '0x2A',
  StageTransition: { stage: 'PREFLIGHT', at: 'yesterday', note: 'n' },
  AdmissionInput: { code: 'DOT-1\u0007', requestedBy: 'test' },
};

export type FreezeReport = { checked: string[]; unfrozen: string[]; threw: string[]; wrong: string[] };

export function freezeAndProbe(): FreezeReport {
  const modules = PRELOADED_CONTRACTS;
  materializeSchemas(modules); // again: it must be idempotent
  // (an ES module namespace cannot be frozen in Node; its exports can, and they reach every schema)
  for (const m of Object.values(modules)) for (const v of Object.values(m)) sdkDeepFreeze(v);
  const report: FreezeReport = { checked: [], unfrozen: [], threw: [], wrong: [] };
  for (const [mod, m] of Object.entries(modules)) {
    for (const [name, schema] of Object.entries(m)) {
      if (!isSchema(schema)) continue;
      report.checked.push(name);
      if (!Object.isFrozen(schema)) report.unfrozen.push(`${mod}.${name}`);
      for (const p of PROBES) {
        try {
          schema.safeParse(p);
        } catch (e) {
          report.threw.push(`${mod}.${name}.safeParse(${JSON.stringify(p)}): ${(e as Error).message}`);
        }
      }
      try {
        if (name in GOOD && !schema.safeParse(GOOD[name]).success) report.wrong.push(`${name} refused a good value`);
        if (name in BAD && schema.safeParse(BAD[name]).success) report.wrong.push(`${name} accepted a bad value`);
      } catch (e) {
        report.threw.push(`${mod}.${name}: ${(e as Error).message}`);
      }
    }
  }
  return report;
}

if (process.argv[1]?.endsWith('preload-freeze.ts')) process.stdout.write(JSON.stringify(freezeAndProbe()));
