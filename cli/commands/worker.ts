// birthgate worker [--drain-timeout D] [--metrics-port N] [--json] | worker build [--json]
// The admission worker (workers/serve.ts) and its workflow bundle built once (workers/bundle.ts).
// Both load on use: `birthgate worker --help` needs neither the SDK nor the bundler.
import fs from 'node:fs';
import { z } from 'zod';
import { parseFlags } from '../args.ts';
import { CliError, EXIT, UsageError, type Command } from '../command.ts';
import { untilSignal } from '../process.ts';

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
    usage: 'worker [--drain-timeout D] [--metrics-port N] [--json]   (metrics: BIRTHGATE_METRICS_PORT, off when unset)',
    options: [
      ['--drain-timeout D', 'how long a stop waits for in-flight activities (15s, 500ms, 2m; default 15s)'],
      ['--metrics-port N', 'serve Prometheus metrics on this port (overrides BIRTHGATE_METRICS_PORT)'],
    ],
    examples: ['birthgate worker', 'birthgate worker --drain-timeout 30s --metrics-port 9464'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, { 'drain-timeout': { type: 'string' }, 'metrics-port': { type: 'string' } });
      let drainMs: number | undefined;
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
      const { crashHooks, DEFAULT_DRAIN_MS, serveAdmissionWorker } = await import('../../workers/serve.ts');
      let result;
      try {
        // Its log lines (JSON or text, BIRTHGATE_LOG_FORMAT) go to stderr; stdout is for --json's one value.
        result = await serveAdmissionWorker({
          config: ctx.config,
          endpoints: ctx.endpoints,
          stop: untilSignal(),
          log: ctx.err,
          drainMs: drainMs ?? DEFAULT_DRAIN_MS,
          metricsPort,
          hooks: crashHooks(process.env),
        });
      } catch (err) {
        if (err instanceof Error && /^refusing to run the worker as superuser/.test(err.message)) {
          throw new CliError(err.message, EXIT.refused, {
            code: 'SUPERUSER_REFUSED',
            next: 'give it the birthgate_worker login: BIRTHGATE_WORKER_DATABASE_URL, or unset it and set BIRTHGATE_WORKER_PASSWORD (the password `birthgate apply` gave the role)',
          });
        }
        // workers/serve.ts says what to do after ' — ' (a port taken, a role or password that does not work).
        const hint = err instanceof Error ? /^(.+?) — (.+)$/s.exec(err.message) : null;
        if (hint) throw new CliError(hint[1]!, EXIT.failed, { code: 'WORKER_START', next: hint[2]! });
        throw err;
      }
      if (v.json) ctx.out(JSON.stringify({ stopped: true, drained: result.code === 0, closed: result.closed, exitCode: result.code }, null, 2));
      if (result.code !== 0) ctx.err('next: the drain timed out; Temporal retries the cancelled activities on another worker — a longer --drain-timeout waits for them');
      // A forced stop may leave a socket the event loop would wait on forever.
      if (!result.closed) process.exit(result.code);
      return result.code;
    },
  },
  {
    name: 'worker build',
    summary: 'build the production workflow bundle once, with its build id, for `birthgate worker`',
    usage: 'worker build [--json]',
    examples: ['birthgate worker build', 'birthgate worker build --json'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, {});
      const started = Date.now();
      ctx.err('building the production workflow bundle …');
      const { writeProductionBundle } = await import('../../workers/bundle.ts');
      const { manifest, files } = await writeProductionBundle(ctx.config.home);
      if (v.json) {
        ctx.out(JSON.stringify({ ...manifest, codePath: files.code, manifestPath: files.manifest }, null, 2));
      } else {
        ctx.out(`build id ${manifest.buildId}`);
        ctx.out(`bundle   ${files.code} (${Math.round(fs.statSync(files.code).size / 1024)} KiB, built in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
        ctx.out(`workflows ${manifest.workflows.join(', ')}`);
      }
      if (manifest.buildIdSource === 'bundle-hash') ctx.err('git is not available here: the build id is the bundle\'s content hash');
      else if (manifest.dirty) ctx.err('the work tree has uncommitted changes: the build id says -dirty, and the bundle is used only while those files stay as they are');
      return EXIT.done;
    },
  },
];
