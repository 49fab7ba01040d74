// The governance handoff's contract: its input (and the totals a run carries into the next), shared by
// the workflow (workflows/handoff.ts) and its client (client/handoff.ts). zod/mini like the admission
// contract, and preloaded once per workflow context with it (workflows/preload.ts): the workflow bundle
// would otherwise build these schemas again for every workflow run, admissions included.
import * as z from 'zod/mini';

/** One tail per (task queue, database): the task queue names the estate's workers, as the Schedules' ids do. */
export const governanceHandoffWorkflowId = (taskQueue: string, database: string) => `${taskQueue}:governance-handoff:${database}`;

/** A non-negative (or at least `min`) integer count: zod/mini's spelling of classic z.number().int().min(n). */
const count = (min: number) => z.number().check(z.int(), z.minimum(min));
/** An integer in [min, max] with a default. */
const bounded = (min: number, max: number, fallback: number) => z._default(z.number().check(z.int(), z.minimum(min), z.maximum(max)), fallback);

const Totals = z.strictObject({
  batches: count(0),
  changelogRows: count(0),
  births: count(0),
  candidates: count(0),
  events: count(0),
  emitted: count(0),
  abandoned: z.number().check(z.minimum(0)),
  runs: count(1),
});
export type HandoffTotals = z.infer<typeof Totals>;

export const GovernanceHandoffInput = z
  .strictObject({
    /** The estate database this tail serves (PostgreSQL's current_database() of the worker's pool). */
    database: z.string().check(z.minLength(1), z.maxLength(63)),
    /**
     * Rows of each tail per batch. 5,000: a batch's cost is mostly one upsert per distinct candidate and
     * a fixed part (the trust checks, the cursor, the history row), so larger batches cost little more
     * than small ones (bench/handoff.ts: 1,000 → 71 batches of ~25 ms, 5,000 → 15 of ~60 ms at prod
     * scale), and one still ends in well under a second — far inside the worker's 8 s statement_timeout.
     */
    batchSize: bounded(1, 10_000, 5_000),
    /** Turns of the loop (batches and waits) before the run continues as new. */
    batchesPerRun: bounded(1, 5_000, 500),
    /** Caught up: the first wait, doubled after each empty batch up to idleMaxMs. */
    idleMinMs: bounded(100, 3_600_000, 1_000),
    idleMaxMs: bounded(100, 3_600_000, 30_000),
    /** Return once caught up instead of waiting (a one-shot catch-up: benchmarks, a scheduled run). */
    untilCaughtUp: z._default(z.boolean(), false),
    activities: z._default(z.enum(['local', 'remote']), 'remote'),
    /** Set by the workflow itself when it continues as new. */
    carry: z.optional(Totals),
  })
  .check(z.refine((i) => i.idleMaxMs >= i.idleMinMs, { message: 'idleMaxMs must be at least idleMinMs', path: ['idleMaxMs'] }));
export type GovernanceHandoffInput = z.input<typeof GovernanceHandoffInput>;
export type HandoffRequest = z.output<typeof GovernanceHandoffInput>;

