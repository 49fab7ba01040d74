// birthgate worker [--drain-timeout D] [--metrics-port N] | worker build [--json]
// The admission worker (workers/serve.ts) and its workflow bundle built once (workers/bundle.ts).
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { writeProductionBundle } from '../../workers/bundle.ts';
import { crashHooks, DEFAULT_DRAIN_MS, serveAdmissionWorker } from '../../workers/serve.ts';
import { UsageError, type Command } from '../command.ts';
import { untilSignal } from '../process.ts';

function args(argv: string[], options: Record<string, { type: 'boolean' | 'string' }>) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000 } as const;

/** `15s`, `500ms`, `2m`, or a bare number of seconds; 0 < D ≤ 10 min. */
export const DrainTimeout = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s|m)?$/, 'expected a duration such as 15s, 500ms or 2m')
  .transform((v) => {
    const unit = (/(ms|s|m)$/.exec(v)?.[1] ?? 's') as keyof typeof UNIT_MS;
    return Math.round(Number.parseFloat(v) * UNIT_MS[unit]);
  })
  .refine((ms) => ms > 0 && ms <= 600_000, 'must be more than 0 and at most 10m');

/** --metrics-port: overrides BIRTHGATE_METRICS_PORT for this run. */
export const MetricsPort = z.coerce.number().int().min(1).max(65535);

export const commands: Command[] = [
  {
    name: 'worker',
    summary: 'run the admission worker (as birthgate_worker; the prebuilt bundle; SIGINT/SIGTERM drains, exit 0 when drained)',
    usage: `worker [--drain-timeout D] [--metrics-port N]   (drain default ${DEFAULT_DRAIN_MS / 1000}s; metrics: BIRTHGATE_METRICS_PORT, off when unset)`,
    async run(argv, ctx) {
      const v = args(argv, { 'drain-timeout': { type: 'string' }, 'metrics-port': { type: 'string' } });
      let drainMs = DEFAULT_DRAIN_MS;
      if (v['drain-timeout'] !== undefined) {
        const parsed = DrainTimeout.safeParse(v['drain-timeout']);
        if (!parsed.success) throw new UsageError(`--drain-timeout: ${parsed.error.issues[0]?.message}`);
        drainMs = parsed.data;
      }
      let metricsPort: number | undefined;
      if (v['metrics-port'] !== undefined) {
        const parsed = MetricsPort.safeParse(v['metrics-port']);
        if (!parsed.success) throw new UsageError('--metrics-port: expected a port number (1-65535)');
        metricsPort = parsed.data;
      }
      const result = await serveAdmissionWorker({
        config: ctx.config,
        endpoints: ctx.endpoints,
        stop: untilSignal(),
        log: ctx.err,
        drainMs,
        metricsPort,
        hooks: crashHooks(process.env),
      });
      // A forced stop may leave a socket the event loop would wait on forever.
      if (!result.closed) process.exit(result.code);
      return result.code;
    },
  },
  {
    name: 'worker build',
    summary: 'build the production workflow bundle once, with its build id, for `birthgate worker`',
    usage: 'worker build [--json]',
    async run(argv, ctx) {
      const v = args(argv, { json: { type: 'boolean' } });
      const started = Date.now();
      const { manifest, files } = await writeProductionBundle(ctx.config.home);
      if (v.json) {
        ctx.out(JSON.stringify({ ...manifest, codePath: files.code, manifestPath: files.manifest }, null, 2));
      } else {
        ctx.out(`build id ${manifest.buildId}`);
        ctx.out(`bundle   ${files.code} (${Math.round(fs.statSync(files.code).size / 1024)} KiB, built in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
        ctx.out(`workflows ${manifest.workflows.join(', ')}`);
        if (manifest.buildIdSource === 'bundle-hash') ctx.err('git is not available here: the build id is the bundle\'s content hash');
        else if (manifest.dirty) ctx.err('the work tree has uncommitted changes: the build id says -dirty, and the bundle is used only while those files stay as they are');
      }
      return 0;
    },
  },
];
