// birthgate start [--once] [--json]: what `npm start` runs. Brings the stack up on the embedded defaults (or
// uses DATABASE_URL / TEMPORAL_ADDRESS), loads the test-scale world when the estate is empty, applies
// the packet, runs the admission worker, and walks a newcomer through one clean admission and one
// stuck birth they can open in the Web UI. Serves until interrupted; --once exits after the checks.
// With --json the tour goes to stderr and stdout gets one JSON value: where things are, what was born.
import type { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { admissionWorkflowId } from '../../contracts/admission.ts';
import type { Pool } from '../../db/pool.ts';
import { readState } from '../../stack/endpoints.ts';
import type { RunningStack } from '../../stack/supervisor.ts';
import { parseFlags } from '../args.ts';
import { EXIT, type CliContext, type Command } from '../command.ts';
import { installCliRuntime, redact, untilSignal } from '../process.ts';

/** The guided tour's two codes: one the dot_tools rule accepts, one it refuses (→ a stuck birth). */
const CLEAN_CODE = 'DOT-900001';
const STUCK_CODE = 'Guided_Stuck_Birth';

async function ensureEstate(ctx: CliContext, pool: Pool, embedded: boolean): Promise<{ runId: string; applied: number }> {
  const { worldState } = await import('../../fixtures/world-state.ts');
  const { loadWorld } = await import('../../fixtures/world.ts');
  const { applyPacket } = await import('../../packet/index.ts');
  const state = await worldState(pool);
  if (state.kind === 'empty' || state.kind === 'baseline') {
    ctx.err('loading the test-scale world (the estate as found on 2026-06-03, defects included) …');
    const summary = await loadWorld(pool, { scale: 'test', force: state.kind === 'baseline' });
    ctx.err(`  ${summary.births} births in ${summary.collections} collections (${Math.round(summary.durationMs)} ms)`);
  } else {
    ctx.err(`estate present (${state.kind === 'world' ? `${state.scale} world loaded ${state.loadedAt}` : 'not loaded by birthgate'})`);
  }
  // The one-way door (step 7) needs an owner's approval. On the embedded, throwaway estate `start`
  // records a local approval and says so; an external estate must be applied by its owner.
  const approval = embedded ? { owner: 'local-embedded-estate', approvalId: 'npm-start' } : {};
  const result = await applyPacket(pool, { ...(embedded ? {} : { through: 6 }), ...approval, workerPassword: ctx.config.workerPassword });
  const applied = result.steps.filter((s) => s.action === 'up').length;
  ctx.err(`apply packet: ${applied} step(s) applied, ${result.steps.length - applied} already in place (run ${result.runId})`);
  if (embedded) ctx.err('  step 7 (one-way door) approved as owner "local-embedded-estate", approval "npm-start": embedded estate only');
  else ctx.err('  external estate: stopped before step 7; its owner runs `birthgate apply --owner NAME --approval ID`');
  return { runId: String(result.runId), applied };
}

type Tour = {
  clean: { code: string; workflowId: string; permitId: string | null; rowId: string | null; birthId: string | null; attached: boolean; url: string | null };
  stuck: { code: string; workflowId: string; stage: string | null; url: string | null };
};

async function guidedTour(ctx: CliContext, say: (line: string) => void, client: Client, uiUrl: string | undefined): Promise<Tour> {
  const { admitByCode, status: admissionStatus } = await import('../../client/admissions.ts');
  const link = (code: string) =>
    uiUrl ? `${uiUrl}/namespaces/${ctx.config.namespace}/workflows/${encodeURIComponent(admissionWorkflowId('dot_tools', code))}` : null;
  say('');
  say(`1. a clean admission: birthgate admit ${CLEAN_CODE} --wait`);
  const clean = await admitByCode(client, { code: CLEAN_CODE, requestedBy: 'npm-start' }, { taskQueue: ctx.config.taskQueue, wait: true });
  const r = clean.result;
  say(`   born: permit ${r?.permitId} FINALIZED, dot_tools row ${r?.rowId}, birth ${r?.birthId}${clean.running ? '' : ' (admitted before; attached)'}`);
  say(`   open it: ${link(CLEAN_CODE) ?? '(no Web UI)'}`);
  say('');
  say(`2. a stuck birth: birthgate admit ${STUCK_CODE}  (the dot_tools code rule refuses this code)`);
  await admitByCode(client, { code: STUCK_CODE, requestedBy: 'npm-start' }, { taskQueue: ctx.config.taskQueue });
  const deadline = Date.now() + 30_000;
  let stage: string | undefined;
  while (Date.now() < deadline) {
    stage = (await admissionStatus(client, { code: STUCK_CODE })).state?.stage;
    if (stage && stage !== 'PREFLIGHT') break;
    await new Promise((res) => setTimeout(res, 250));
  }
  say(`   stage: ${stage ?? 'unknown'} — it waits for an operator; see \`birthgate stuck\``);
  say(`   open it: ${link(STUCK_CODE) ?? '(no Web UI)'}`);
  say(`   then:    birthgate break-glass ${STUCK_CODE} --actor you --reason "why" --approval CHG-1   (or: birthgate cancel ${STUCK_CODE})`);
  say(`   all stuck births in the UI: ${uiUrl ?? ''}/namespaces/${ctx.config.namespace}/workflows?query=${encodeURIComponent("BirthStage='BLOCKED'")}`);
  return {
    clean: { code: CLEAN_CODE, workflowId: clean.workflowId, permitId: r?.permitId ?? null, rowId: r?.rowId ?? null, birthId: r?.birthId ?? null, attached: !clean.running, url: link(CLEAN_CODE) },
    stuck: { code: STUCK_CODE, workflowId: admissionWorkflowId('dot_tools', STUCK_CODE), stage: stage ?? null, url: link(STUCK_CODE) },
  };
}

export const commands: Command[] = [
  {
    name: 'start',
    summary: 'stack + estate + packet + worker, then a guided admission (what `npm start` runs)',
    usage: 'start [--once] [--json]',
    options: [['--once', 'exit after the guided admission instead of serving until Ctrl-C']],
    examples: ['birthgate start', 'birthgate start --once --json'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, { once: { type: 'boolean' } });
      const json = v.json === true;
      // The tour is for people: on stderr when stdout is the JSON value.
      const say = json ? ctx.err : ctx.out;
      const { isAlive } = await import('../../stack/postgres.ts');
      // Reuse a stack already running (`stack up --detach`); otherwise this process supervises one.
      const existing = readState(ctx.config);
      let stack: RunningStack | undefined;
      if (!(existing?.ready && isAlive(existing.supervisorPid)) && !(ctx.config.externalDatabaseUrl && ctx.config.externalTemporalAddress)) {
        const { startStack } = await import('../../stack/supervisor.ts');
        stack = await startStack(ctx.config, ctx.err);
      }
      let worker: Worker | undefined;
      let workerRun: Promise<void> | undefined;
      const pools: Pool[] = [];
      const connections: Array<{ close(): Promise<void> }> = [];
      try {
        const endpoints = await ctx.endpoints();
        ctx.err(`stack: PostgreSQL ${redact(endpoints.databaseUrl)} · Temporal ${endpoints.temporalAddress} · UI ${endpoints.uiUrl ?? '-'}`);
        const { createPool, databaseOf } = await import('../../db/pool.ts');
        const admin = createPool(endpoints.databaseUrl, { max: 4, applicationName: 'birthgate-start' });
        pools.push(admin);
        const packet = await ensureEstate(ctx, admin, !ctx.config.externalDatabaseUrl);

        // The worker's own INFO lines would drown the guided tour; warnings and errors still show.
        await installCliRuntime();
        const { NativeConnection } = await import('@temporalio/worker');
        const { Client, Connection } = await import('@temporalio/client');
        const { createAdmissionWorker, DEFAULT_ACTIVITY_SLOTS } = await import('../../workers/admission-worker.ts');
        const { productionBundle } = await import('../../workers/bundle.ts');
        const { applySchedules } = await import('../../client/schedules.ts');
        const workerPool = createPool(endpoints.workerDatabaseUrl, { max: DEFAULT_ACTIVITY_SLOTS, applicationName: 'birthgate-worker' });
        pools.push(workerPool);
        const nativeConnection = await NativeConnection.connect({ address: endpoints.temporalAddress });
        connections.push(nativeConnection);
        // The production worker's bundle (no benchmark-only workflows): prebuilt by `birthgate worker build`, else built now.
        ctx.err('worker: loading the workflow bundle (built now when `birthgate worker build` has not) …');
        const wb = await productionBundle(ctx.config.home);
        worker = await createAdmissionWorker({
          connection: nativeConnection,
          namespace: endpoints.namespace,
          taskQueue: ctx.config.taskQueue,
          pool: workerPool,
          workflowBundle: wb.bundle,
          buildId: wb.buildId,
        });
        workerRun = worker.run();
        ctx.err(`worker: task queue ${ctx.config.taskQueue}, build id ${wb.buildId} (${wb.origin.kind === 'prebuilt' ? 'prebuilt bundle' : 'bundle built now'}), connected to PostgreSQL as birthgate_worker`);

        const connection = await Connection.connect({ address: endpoints.temporalAddress });
        connections.push(connection);
        const client = new Client({ connection, namespace: endpoints.namespace });
        // The Schedules (permit-expiry sweep, drift watch) run on this worker: created or brought to their declaration.
        const schedules = await applySchedules(client, { taskQueue: ctx.config.taskQueue });
        for (const a of schedules) ctx.err(`schedule ${a.scheduleId}: ${a.outcome} (\`birthgate schedules\` lists them)`);
        // The governance handoff (a long-running tail, not a Schedule), once per estate, as `schedules apply` starts it.
        const { ensureGovernanceHandoff } = await import('../../client/handoff.ts');
        const database = databaseOf(endpoints.databaseUrl);
        const handoff = await ensureGovernanceHandoff(client, { taskQueue: ctx.config.taskQueue, database });
        ctx.err(`handoff ${handoff.workflowId}: ${handoff.started ? 'started' : 'running'}`);
        const tour = await guidedTour(ctx, say, client, endpoints.uiUrl);
        if (json) {
          ctx.out(JSON.stringify({
            temporalAddress: endpoints.temporalAddress, namespace: endpoints.namespace, uiUrl: endpoints.uiUrl ?? null, taskQueue: ctx.config.taskQueue,
            buildId: wb.buildId, packet, schedules: schedules.map((a) => ({ scheduleId: a.scheduleId, outcome: a.outcome })), handoff, ...tour, serving: !v.once,
          }, null, 2));
        }
        if (!v.once) {
          say('');
          say('serving; Ctrl-C stops the worker and the stack');
          await untilSignal();
        }
        return EXIT.done;
      } finally {
        if (worker && worker.getState() === 'RUNNING') worker.shutdown();
        await workerRun?.catch(() => undefined);
        for (const c of connections.reverse()) await c.close().catch(() => undefined);
        for (const p of pools) await p.end().catch(() => undefined);
        await stack?.stop();
      }
    },
  },
];
