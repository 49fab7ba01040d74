// A bad deploy of the admission workflow, for tests: a bundle that registers the production type
// name but whose code cannot run (as after a build that left a module out). Every workflow task of
// an admission on its task queue fails — a plain error from workflow code fails the task, not the
// workflow — and is retried for ever; the admission never reaches a stage, so its BirthStage says
// nothing. The server's TemporalReportedProblems is how `birthgate stuck` and the Web UI still find it.
export async function dotBirthAdmit(): Promise<never> {
  throw new TypeError('bad deploy: the admission workflow cannot run (a module is missing from this bundle)');
}
