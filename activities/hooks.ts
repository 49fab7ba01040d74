// Named points inside activities where a test can kill the worker process (DESIGN §4 crash tests).
// Production passes no hooks; workers/main.ts wires BIRTHGATE_TEST_CRASH_AT only when NODE_ENV=test.
export const CrashPoint = ['preflight', 'after-permit-issue', 'after-insert-commit'] as const;
export type CrashPoint = (typeof CrashPoint)[number];

export type ActivityHooks = {
  /** Called when an activity passes `point`; the side effect before it has committed. */
  at(point: CrashPoint): void;
};

export const noHooks: ActivityHooks = { at() {} };
