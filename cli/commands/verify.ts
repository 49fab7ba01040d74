// birthgate verify [--json]: the entry-state probes of KB-2590 §1–§9, live. When the estate is a
// loaded world, every figure it declares is checked too; a mismatch exits 1.
import { WORLD_FIGURES } from '../../fixtures/figures.ts';
import type { EntryState } from '../../probes/entry-state.ts';
import { compareWithFigures, type FigureCheck } from '../../probes/figures-check.ts';
import { parseFlags } from '../args.ts';
import { EXIT, type Command } from '../command.ts';

export type VerifyReport = {
  entryState: EntryState;
  /** Null when the estate carries no world marker (nothing declared to compare with). */
  comparison: { scale: EntryState['worldScale']; ok: boolean; checks: FigureCheck[] } | null;
};

export async function verifyEntryState(databaseUrl: string): Promise<VerifyReport> {
  const { withClient } = await import('../../db/pool.ts');
  const { probeEntryState } = await import('../../probes/entry-state.ts');
  const entryState = await withClient(databaseUrl, (c) => probeEntryState(c));
  if (!entryState.worldScale) return { entryState, comparison: null };
  const checks = compareWithFigures(entryState, WORLD_FIGURES[entryState.worldScale]);
  return { entryState, comparison: { scale: entryState.worldScale, ok: checks.every((c) => c.ok), checks } };
}

function formatComparison(c: NonNullable<VerifyReport['comparison']>): string {
  const bad = c.checks.filter((x) => !x.ok);
  if (bad.length === 0) return `fixture figures (scale ${c.scale}): all ${c.checks.length} checks match`;
  const width = Math.max(...bad.map((x) => x.check.length));
  return [
    `fixture figures (scale ${c.scale}): ${bad.length} of ${c.checks.length} checks DIFFER`,
    ...bad.map((x) => `  ${x.check.padEnd(width)}  expected ${String(x.expected)}, found ${String(x.actual)}`),
  ].join('\n');
}

export const commands: Command[] = [
  {
    name: 'verify',
    summary: "probe the live entry state (KB-2590 §1–§9) and check a loaded world's figures (exit 1 when a figure differs)",
    usage: 'verify [--json]',
    examples: ['birthgate verify', 'birthgate verify --json'],
    async run(argv, ctx) {
      const json = parseFlags(argv, {}).values.json === true;
      const { databaseUrl } = await ctx.endpoints();
      const report = await verifyEntryState(databaseUrl);
      if (json) {
        ctx.out(JSON.stringify(report, null, 2));
      } else {
        const { formatEntryState } = await import('../../probes/entry-state.ts');
        ctx.out(formatEntryState(report.entryState));
        ctx.out('');
        ctx.out(report.comparison ? formatComparison(report.comparison) : 'no world marker: nothing declared to compare with');
      }
      if (report.comparison && !report.comparison.ok) {
        // The report is the answer; what to do about a difference goes beside it, on stderr.
        ctx.err(`next: the lines above name each figure that differs from what the loaded world declares; \`birthgate world load --scale ${report.comparison.scale} --force\` loads it afresh`);
        return EXIT.failed;
      }
      return EXIT.done;
    },
  },
];
