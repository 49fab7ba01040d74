// birthgate world load --scale test|prod [--force] [--json]: the fixture generator (fixtures/world.ts)
// into the stack's database. A forced reload says what it moved aside: the packet ledger of the estate
// it dropped (its runs no longer describe this database, so the next apply starts from a fresh ledger).
// Exit 2 when the load is refused and nothing changed (a world is there without --force, or a packet
// run or workflow holds the packet).
import { z } from 'zod';
import { ScaleSchema } from '../../fixtures/figures.ts';
import type { WorldSummary } from '../../fixtures/world.ts';
import { parseFlags } from '../args.ts';
import { CliError, EXIT, UsageError, type Command } from '../command.ts';
import { progressBar } from '../progress-bar.ts';

const ArgsSchema = z.object({ scale: ScaleSchema, force: z.boolean().default(false), json: z.boolean().default(false) });

/** The archived ledger in one paragraph: where it went and each run it held. */
function describeArchive(a: NonNullable<WorldSummary['ledgerArchive']>): string {
  const runs = a.runs.map((r) => `run ${r.runId} (${r.kind}${r.targetStep === null ? '' : ` to step ${r.targetStep}`}, ${r.status})`);
  return `packet ledger archived: ${runs.length} run(s) of the dropped estate moved to schema ${a.schema}: ${runs.join(', ')}; ` +
    'the next apply starts from a fresh ledger (run ids continue)';
}

function parse(argv: string[]): z.infer<typeof ArgsSchema> {
  const { values } = parseFlags(argv, { scale: { type: 'string' }, force: { type: 'boolean' } });
  const parsed = ArgsSchema.safeParse(values);
  if (!parsed.success) throw new UsageError(values.scale === undefined ? '--scale is required: test or prod' : '--scale must be test or prod');
  return parsed.data;
}

export const commands: Command[] = [
  {
    name: 'world load',
    summary: 'load the estate as found (KB-2590, defects included) at scale test or prod (exit 2, nothing changed, when a world is there without --force)',
    usage: 'world load --scale test|prod [--force] [--json]',
    options: [
      ['--scale test|prod', 'the test scale (seconds), or production\'s figures: 1,126,728 births'],
      ['--force', 'drop the estate (packet included) and load it again; archives the packet ledger'],
    ],
    examples: ['birthgate world load --scale test', 'birthgate world load --scale test --force --json'],
    async run(argv, ctx) {
      const { scale, force, json } = parse(argv);
      const { databaseUrl } = await ctx.endpoints();
      const { createPool } = await import('../../db/pool.ts');
      const { loadWorld, WorldBusyError, WorldExistsError } = await import('../../fixtures/world.ts');
      const pool = createPool(databaseUrl, { max: 1, applicationName: 'birthgate-world-load' });
      // Progress on stderr: redrawn on a terminal; one line per 10% otherwise, for a prod load in CI.
      const bar = progressBar(process.stderr, { enabled: process.stderr.isTTY === true || scale === 'prod' });
      ctx.err(`loading the ${scale}-scale world${force ? ' (replacing the estate)' : ''} …`);
      try {
        const s = await loadWorld(pool, { scale, force, onProgress: (p) => bar.update(p) });
        bar.finish();
        if (json) ctx.out(JSON.stringify(s, null, 2));
        else {
          ctx.out(
            `world loaded: scale ${s.scale}, ${s.births.toLocaleString('en-US')} births in ${s.collections} collections, ` +
              `${s.rowsWritten.toLocaleString('en-US')} rows in ${(s.durationMs / 1000).toFixed(1)} s` +
              (s.replaced ? ' (replaced the previous estate)' : ''),
          );
          if (s.ledgerArchive) ctx.out(describeArchive(s.ledgerArchive));
        }
        return EXIT.done;
      } catch (err) {
        bar.finish();
        if (err instanceof WorldExistsError) {
          throw new CliError(err.message, EXIT.refused, { code: 'WORLD_EXISTS', next: '`birthgate world load --scale test --force` replaces it (the packet goes with it)' });
        }
        if (err instanceof WorldBusyError) {
          throw new CliError(err.message, EXIT.refused, { code: 'PACKET_BUSY', next: 'wait for the packet run or workflow to finish, or stop it (`birthgate packet stop --reason R`), then load again' });
        }
        throw err;
      } finally {
        await pool.end();
      }
    },
  },
];
