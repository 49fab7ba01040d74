// Every side effect of an admission, built from one pool (samples-typescript: activities from a
// factory, so production and tests build them the same way). One module per resource.
import type { Pool } from '../db/pool.ts';
import { compensationActivities } from './compensation.ts';
import { finalizeActivities } from './finalize.ts';
import { governedRowActivities } from './governed-row.ts';
import { handoffActivities } from './handoff.ts';
import { type ActivityHooks, noHooks } from './hooks.ts';
import { permitActivities } from './permits.ts';
import { preflightActivities } from './preflight.ts';
import { scheduleActivities } from './schedules.ts';

export type ActivityDeps = { pool: Pool; hooks?: ActivityHooks };

export function createActivities({ pool, hooks = noHooks }: ActivityDeps) {
  return {
    ...preflightActivities(pool, hooks),
    ...permitActivities(pool, hooks),
    ...governedRowActivities(pool, hooks),
    ...handoffActivities(pool), // the governance handoff's batch (one SQL statement)
    ...finalizeActivities(pool, hooks),
    ...compensationActivities(pool, hooks),
    ...scheduleActivities(pool), // the Schedules' ticks: permit-expiry sweep, drift watch
  };
}

export type AdmissionActivities = ReturnType<typeof createActivities>;
export type { ActivityHooks, CrashPoint } from './hooks.ts';
