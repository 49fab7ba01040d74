// The production worker's workflows entry point (what `birthgate worker` and workers/main.ts bundle).
// Only exports become registered workflow types, so this lists what production runs and nothing
// else: the benchmark-only variant `dotBirthAdmitLocal` (workflows/index.ts, used by bench/) is left
// out, and starting it on the production task queue fails its first workflow task.
// test/worker-cli.test.ts fails when workflows/index.ts gains a workflow that is not listed here or
// in BENCHMARK_ONLY_WORKFLOWS (workers/bundle.ts): a new workflow type is a decision, not an accident.
export { dotBirthAdmit, dotBirthRollback } from '../workflows/index.ts';
export { governanceHandoff } from '../workflows/index.ts'; // the governance handoff's cursor tail (client/handoff.ts)
export { driftWatchTick, permitExpirySweep } from '../workflows/index.ts'; // the Schedules' ticks (client/schedules.ts)
