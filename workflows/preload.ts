// What the workflow bundle loads once per reusable V8 context instead of once per workflow run (the
// SDK's bundlerOptions.preloadModules, listed in workers/admission-worker.ts PRELOADED_MODULES).
//
// Why: the SDK gives every workflow run its own module cache, so each run evaluated contracts/admission.ts
// afresh — constructing its ~100 zod/mini schemas cost about 8.5 ms of worker CPU per admission, a fifth
// of what a clean admission spent in the workflow thread (CPU profile of the worker, README "Benchmarks").
// A module loaded here is evaluated once, shared by every run in the context, and deep-frozen by the SDK.
//
// What may be here: modules with no per-workflow state — constants, pure functions, schemas. Nothing
// that calls a workflow API at load time (there is no workflow yet), nothing with module-level `let`,
// Map or Set that a run writes (freezing cannot reach a closure: that would leak between workflows).
// workflows/README.md "Preloaded modules" states the rules; test/workflow-preload.test.ts checks the list.
//
// Why the walk below: zod/mini builds what a schema needs on first use — bound methods (`safeParse`),
// internals (`optin`, `values`, `pattern`, `propValues`) — and stores them on the schema then. A frozen
// schema cannot take them ("Cannot define property safeParse, object is not extensible"), so every
// schema is made to build them now, before the SDK freezes it: every getter on its prototype chain is
// read, and it is parsed twice on its own (see warm). A pattern a check resets (`lastIndex`) becomes a
// getter of fresh copies (see unfreezable). An object's compiled fast path lives in a closure.
// Deterministic: the same schemas, the same reads, in every context. test/workflow-preload.test.ts
// freezes every preloaded schema the SDK's way and parses each one, good and bad input.
import * as admission from '../contracts/admission.ts';
import * as handoff from '../contracts/handoff.ts';
import * as searchAttributes from '../contracts/search-attributes.ts';

const STOP: ReadonlySet<unknown> = new Set([Object.prototype, Function.prototype, Array.prototype, null]);

function materialize(value: unknown, seen: WeakSet<object>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  warm(value);
  if (Array.isArray(value)) {
    for (const item of value) materialize(item, seen);
    return;
  }
  for (let proto = Object.getPrototypeOf(value) as object | null; !STOP.has(proto); proto = Object.getPrototypeOf(proto) as object | null) {
    for (const key of Reflect.ownKeys(proto!)) {
      if (typeof Object.getOwnPropertyDescriptor(proto!, key)?.get !== 'function') continue;
      try {
        materialize((value as Record<PropertyKey, unknown>)[key], seen);
      } catch {
        // a getter that cannot answer for this schema kind builds nothing either
      }
    }
  }
  for (const key of Reflect.ownKeys(value)) {
    const d = Object.getOwnPropertyDescriptor(value, key);
    if (!d || !('value' in d)) continue;
    if (isRegExp(d.value)) unfreezable(value, key, d.value);
    else materialize(d.value, seen);
  }
}

/**
 * Two parses of a schema on its own: zod rewrites a schema's parse path on its first parse or two when
 * a cycle memoizer is configured (zod/v4/core/memoizer.js, which classic zod installs and zod/mini does
 * not — the bundle has none, but a contract must not break if one ever comes in). Every contract check
 * is a pure predicate, so parsing `undefined` has no effect beyond that.
 */
function warm(value: object): void {
  const schema = value as { _zod?: unknown; safeParse?: unknown };
  if (typeof schema.safeParse !== 'function' || typeof schema._zod !== 'object') return;
  for (let i = 0; i < 2; i++) {
    try {
      (schema.safeParse as (v: unknown) => unknown)(undefined);
    } catch {
      // a schema that throws on its own parse throws in the workflow as well; the test names it
    }
  }
}

const isRegExp = (v: unknown): v is RegExp => Object.prototype.toString.call(v) === '[object RegExp]';

/**
 * zod's pattern checks reset `pattern.lastIndex` before each test, which a frozen RegExp refuses
 * ("Cannot assign to read only property 'lastIndex'"). The property becomes a getter that hands out a
 * fresh copy of the pattern on every read — a getter's result is not reachable for the SDK's freeze
 * (it freezes that copy, not the next) and no run shares a RegExp's state with another.
 */
function unfreezable(holder: object, key: PropertyKey, re: RegExp): void {
  const { source, flags } = re;
  Object.defineProperty(holder, key, { configurable: true, enumerable: true, get: () => new RegExp(source, flags) });
}

/** The contract modules this preload loads: a new one is added here (and nowhere else). */
export const PRELOADED_CONTRACTS = { admission, handoff, searchAttributes } as const;

/** Every schema the given modules export, ready to be frozen. */
export function materializeSchemas(modules: Record<string, object>): number {
  const seen = new WeakSet<object>();
  for (const m of Object.values(modules)) for (const v of Object.values(m)) materialize(v, seen);
  return Object.keys(modules).length;
}

materializeSchemas(PRELOADED_CONTRACTS);
