// Named points inside activities where a test can kill the worker process (DESIGN §4 crash tests).
// Production passes no hooks; workers/main.ts wires BIRTHGATE_TEST_CRASH_AT only when NODE_ENV=test.
// Each point sits right after a side effect committed and before the activity reports it, so a kill
// there leaves the database ahead of the workflow: the retry must find what committed, not redo it.
export const CrashPoint = [
  'preflight',
  'after-permit-issue',
  'after-insert-commit', // the governed insert, with or without a break-glass entry
  'after-confirm-finalized', // the ledger read that confirms FINALIZED, before it is reported
  'after-permit-withdraw', // fn_permit_withdraw (or a late commit's rollback) committed
  'after-birth-retire', // fn_admission_rollback committed: row removed, birth retired
] as const;
export type CrashPoint = (typeof CrashPoint)[number];

export type ActivityHooks = {
  /** Called when an activity passes `point`; the side effect before it has committed. */
  at(point: CrashPoint): void;
};

export const noHooks: ActivityHooks = { at() {} };
