// birthgate start [--once]: what `npm start` runs. Brings the stack up on the embedded defaults (or
// uses DATABASE_URL / TEMPORAL_ADDRESS), loads the test-scale world when the estate is empty, applies
// the packet, runs the admission worker, and walks a newcomer through one clean admission and one
// stuck birth they can open in the Web UI. Serves until interrupted; --once exits after the checks.
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { admitByCode, status as admissionStatus } from '../../client/admissions.ts';
import { applySchedules } from '../../client/schedules.ts';
import { admissionWorkflowId } from '../../contracts/admission.ts';
import { createPool, type Pool } from '../../db/pool.ts';
import { loadWorld } from '../../fixtures/world.ts';
import { worldState } from '../../fixtures/world-state.ts';
import { applyPacket } from '../../packet/index.ts';
import { readState } from '../../stack/endpoints.ts';
import { isAlive } from '../../stack/postgres.ts';
import { startStack, type RunningStack } from '../../stack/supervisor.ts';
import { createAdmissionWorker, DEFAULT_ACTIVITY_SLOTS } from '../../workers/admission-worker.ts';
import { productionBundle } from '../../workers/bundle.ts';
import { UsageError, type CliContext, type Command } from '../command.ts';
import { redact, untilSignal } from '../process.ts';

/** The guided tour's two codes: one the dot_tools rule accepts, one it refuses (→ a stuck birth). */
const CLEAN_CODE = 'DOT-900001';
const STUCK_CODE = 'Guided_Stuck_Birth';

async function ensureEstate(ctx: CliContext, pool: Pool, embedded: boolean): Promise<void> {
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
}

async function guidedTour(ctx: CliContext, client: Client, uiUrl: string | undefined): Promise<void> {
  const link = (code: string) =>
    uiUrl ? `${uiUrl}/namespaces/${ctx.config.namespace}/workflows/${encodeURIComponent(admissionWorkflowId('dot_tools', code))}` : '(no Web UI)';
  ctx.out('');
  ctx.out(`1. a clean admission: birthgate admit ${CLEAN_CODE} --wait`);
  const clean = await admitByCode(client, { code: CLEAN_CODE, requestedBy: 'npm-start' }, { taskQueue: ctx.config.taskQueue, wait: true });
  const r = clean.result;
  ctx.out(`   born: permit ${r?.permitId} FINALIZED, dot_tools row ${r?.rowId}, birth ${r?.birthId}${clean.running ? '' : ' (admitted before; attached)'}`);
  ctx.out(`   open it: ${link(CLEAN_CODE)}`);
  ctx.out('');
  ctx.out(`2. a stuck birth: birthgate admit ${STUCK_CODE}  (the dot_tools code rule refuses this code)`);
  await admitByCode(client, { code: STUCK_CODE, requestedBy: 'npm-start' }, { taskQueue: ctx.config.taskQueue });
  const deadline = Date.now() + 30_000;
  let stage: string | undefined;
  while (Date.now() < deadline) {
    stage = (await admissionStatus(client, { code: STUCK_CODE })).state?.stage;
    if (stage && stage !== 'PREFLIGHT') break;
    await new Promise((res) => setTimeout(res, 250));
  }
  ctx.out(`   stage: ${stage ?? 'unknown'} — it waits for an operator; see \`birthgate stuck\``);
  ctx.out(`   open it: ${link(STUCK_CODE)}`);
  ctx.out(`   then:    birthgate break-glass ${STUCK_CODE} --actor you --reason "why" --approval CHG-1   (or: birthgate cancel ${STUCK_CODE})`);
  ctx.out(`   all stuck births in the UI: ${uiUrl ?? ''}/namespaces/${ctx.config.namespace}/workflows?query=${encodeURIComponent("BirthStage='BLOCKED'")}`);
}

export const commands: Command[] = [
  {
    name: 'start',
    summary: 'stack + estate + packet + worker, then a guided admission (what `npm start` runs)',
    usage: 'start [--once]',
    async run(argv, ctx) {
      let once: boolean;
      try {
        once = parseArgs({ args: argv, options: { once: { type: 'boolean' } } }).values.once === true;
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      // Reuse a stack already running (`stack up --detach`); otherwise this process supervises one.
      const existing = readState(ctx.config);
      let stack: RunningStack | undefined;
      if (!(existing?.ready && isAlive(existing.supervisorPid)) && !(ctx.config.externalDatabaseUrl && ctx.config.externalTemporalAddress)) {
        stack = await startStack(ctx.config, ctx.err);
      }
      let worker: Worker | undefined;
      let workerRun: Promise<void> | undefined;
      const pools: Pool[] = [];
      const connections: Array<{ close(): Promise<void> }> = [];
      try {
        const endpoints = await ctx.endpoints();
        ctx.err(`stack: PostgreSQL ${redact(endpoints.databaseUrl)} · Temporal ${endpoints.temporalAddress} · UI ${endpoints.uiUrl ?? '-'}`);
        const admin = createPool(endpoints.databaseUrl, { max: 4, applicationName: 'birthgate-start' });
        pools.push(admin);
        await ensureEstate(ctx, admin, !ctx.config.externalDatabaseUrl);

        // The worker's own INFO lines would drown the guided tour; warnings and errors still show.
        // Core's own warnings forwarded to the logger (stderr): by default Core prints them to stdout, into --json output.
    Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } } } });
        const workerPool = createPool(endpoints.workerDatabaseUrl, { max: DEFAULT_ACTIVITY_SLOTS, applicationName: 'birthgate-worker' });
        pools.push(workerPool);
        const nativeConnection = await NativeConnection.connect({ address: endpoints.temporalAddress });
        connections.push(nativeConnection);
        // The production worker's bundle (no benchmark-only workflows): prebuilt by `birthgate worker build`, else built now.
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
        for (const a of await applySchedules(client, { taskQueue: ctx.config.taskQueue })) ctx.err(`schedule ${a.scheduleId}: ${a.outcome} (\`birthgate schedules\` lists them)`);
        await guidedTour(ctx, client, endpoints.uiUrl);
        if (!once) {
          ctx.out('');
          ctx.out('serving; Ctrl-C stops the worker and the stack');
          await untilSignal();
        }
        return 0;
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
