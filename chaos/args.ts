// `npm run chaos -- --admissions N --seed S [--engine dev|server] [--no-faults] …`: the arguments,
// parsed by node's parseArgs and validated with zod. A bad argument is a usage error (exit 2) before
// anything starts.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { describeIssues } from '../contracts/admission.ts';

export const USAGE = `usage: npm run chaos -- [--admissions N] [--seed S] [--engine dev|server] [--no-faults] [--no-baseline]
                      [--concurrency C] [--workers W] [--report FILE]

  --admissions N   admissions to run (default 1000)
  --seed S         drives every random choice; the same seed replays the same plan and fault schedule
                   (default: a fresh one, printed first)
  --engine E       dev: the Temporal dev server with its persisted db file (default);
                   server: the real Temporal server on PostgreSQL (stack/temporal-server.ts)
  --no-faults      only the no-fault run of the seed
  --no-baseline    only the fault run (no no-fault run beside it)
  --concurrency C  admissions driven at once (default 8)
  --workers W      worker processes (default 2)
  --report FILE    also write the report there (FILE.md and FILE.json)

exit 0 every invariant held, 1 an invariant was breached (or the run failed), 2 bad arguments`;

export const ChaosOptions = z.strictObject({
  admissions: z.coerce.number().int().min(1).max(100_000).default(1000),
  seed: z.string().min(1).max(100).regex(/^[\x21-\x7e]+$/, 'the seed is printable ASCII without spaces').optional(),
  engine: z.enum(['dev', 'server']).default('dev'),
  faults: z.boolean().default(true),
  baseline: z.boolean().default(true),
  concurrency: z.coerce.number().int().min(1).max(64).default(8),
  workers: z.coerce.number().int().min(1).max(4).default(2),
  report: z.string().min(1).optional(),
});
export type ChaosOptionsInput = z.input<typeof ChaosOptions>;
export type ChaosOptions = z.output<typeof ChaosOptions> & { seed: string };

export class ChaosUsageError extends Error {
  override name = 'ChaosUsageError';
}

/** Options from argv; ChaosUsageError on anything unknown or out of range. */
export function parseChaosArgs(argv: string[]): ChaosOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        admissions: { type: 'string' },
        seed: { type: 'string' },
        engine: { type: 'string' },
        'no-faults': { type: 'boolean' },
        'no-baseline': { type: 'boolean' },
        concurrency: { type: 'string' },
        workers: { type: 'string' },
        report: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new ChaosUsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v['no-faults'] && v['no-baseline']) throw new ChaosUsageError('--no-faults and --no-baseline together leave nothing to run');
  return chaosOptions({
    admissions: v.admissions,
    seed: v.seed,
    engine: v.engine,
    faults: !v['no-faults'],
    baseline: !v['no-baseline'],
    concurrency: v.concurrency,
    workers: v.workers,
    report: v.report,
  } as ChaosOptionsInput);
}

/** Validated options (a fresh seed when none is given). */
export function chaosOptions(raw: ChaosOptionsInput): ChaosOptions {
  const r = ChaosOptions.safeParse(raw);
  if (!r.success) throw new ChaosUsageError(describeIssues(r.error));
  return { ...r.data, seed: r.data.seed ?? randomBytes(6).toString('hex') };
}
