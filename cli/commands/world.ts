// birthgate world load --scale test|prod [--force]: the fixture generator (fixtures/world.ts) into
// the stack's database. A forced reload says what it moved aside: the packet ledger of the estate it
// dropped (its runs no longer describe this database, so the next apply starts from a fresh ledger).
// Exit 2 when the load is refused and nothing changed (a world is there without --force, or a packet
// run or workflow holds the packet).
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createPool } from '../../db/pool.ts';
import { ScaleSchema } from '../../fixtures/figures.ts';
import { loadWorld, WorldBusyError, WorldExistsError, type WorldSummary } from '../../fixtures/world.ts';
import { UsageError, type Command } from '../command.ts';
import { progressBar } from '../progress-bar.ts';

const ArgsSchema = z.object({ scale: ScaleSchema, force: z.boolean().default(false) });

/** The archived ledger in one paragraph: where it went and each run it held. */
function describeArchive(a: NonNullable<WorldSummary['ledgerArchive']>): string {
  const runs = a.runs.map((r) => `run ${r.runId} (${r.kind}${r.targetStep === null ? '' : ` to step ${r.targetStep}`}, ${r.status})`);
  return `packet ledger archived: ${runs.length} run(s) of the dropped estate moved to schema ${a.schema}: ${runs.join(', ')}; ` +
    'the next apply starts from a fresh ledger (run ids continue)';
}

function parse(argv: string[]): z.infer<typeof ArgsSchema> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, options: { scale: { type: 'string' }, force: { type: 'boolean' } }, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const parsed = ArgsSchema.safeParse(values);
  if (!parsed.success) throw new UsageError('--scale must be test or prod');
  return parsed.data;
}

export const commands: Command[] = [
  {
    name: 'world load',
    summary: 'load the estate as found (KB-2590, defects included) at scale test or prod',
    usage: 'world load --scale test|prod [--force]',
    async run(argv, ctx) {
      const { scale, force } = parse(argv);
      const { databaseUrl } = await ctx.endpoints();
      const pool = createPool(databaseUrl, { max: 1, applicationName: 'birthgate-world-load' });
      const bar = progressBar(process.stderr, { enabled: process.stderr.isTTY === true || scale === 'prod' });
      try {
        const s = await loadWorld(pool, { scale, force, onProgress: (p) => bar.update(p) });
        bar.finish();
        ctx.out(
          `world loaded: scale ${s.scale}, ${s.births.toLocaleString('en-US')} births in ${s.collections} collections, ` +
            `${s.rowsWritten.toLocaleString('en-US')} rows in ${(s.durationMs / 1000).toFixed(1)} s` +
            (s.replaced ? ' (replaced the previous estate)' : ''),
        );
        if (s.ledgerArchive) ctx.out(describeArchive(s.ledgerArchive));
        return 0;
      } catch (err) {
        bar.finish();
        if (err instanceof WorldExistsError || err instanceof WorldBusyError) {
          ctx.err(err.message);
          return 2;
        }
        throw err;
      } finally {
        await pool.end();
      }
    },
  },
];
