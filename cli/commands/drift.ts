// birthgate drift [--json] [--resolved N] | rebaseline --owner O --reason R [--approval ID] [--json]
// The drift watch's record for the humans who decide (SECURITY.md "What is only detected"): what the
// watch found, since when and how often (exit 3 while any is open: admissions are blocked for a human),
// and the logged rebaseline that accepts a catalog change. Both on the operator's own login
// (BIRTHGATE_OPERATOR_DATABASE_URL; on the embedded stack the superuser URL), like `break-glass`.
// The client and the driver load when a verb runs.
import type { StoredFinding } from '../../client/schedules.ts';
import type { Pool } from '../../db/pool.ts';
import { parseFlags, str } from '../args.ts';
import { CliError, EXIT, UsageError, type CliContext, type Command } from '../command.ts';

type Api = typeof import('../../client/schedules.ts');

async function withOperator<T>(ctx: CliContext, what: string, fn: (db: Pool, api: Api) => Promise<T>): Promise<T> {
  const { operatorDatabaseUrl } = await ctx.endpoints();
  const api = await import('../../client/schedules.ts');
  const { createPool } = await import('../../db/pool.ts');
  const db = createPool(operatorDatabaseUrl, { max: 1, applicationName: `birthgate-${what}` });
  try {
    return await fn(db, api);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (err instanceof api.DriftInputError) throw new UsageError(err.message);
    if (code === '42P01' || code === '42883') {
      throw new CliError(`the drift watch is not installed here (${(err as Error).message})`, EXIT.failed, {
        code,
        next: 'apply the packet through its last step (`birthgate apply`)',
      });
    }
    // Refused by the database, nothing changed: bad input, or a login that is not a birthgate_operator member.
    if (code === '42501' || (code && /^BG4/.test(code))) {
      throw new CliError(`${what} refused by the database (${code}): ${(err as Error).message}`, EXIT.refused, {
        code,
        next: code === '42501' ? 'use an operator login (a member of birthgate_operator): BIRTHGATE_OPERATOR_DATABASE_URL' : 'nothing was changed: the message says which input the database refused',
      });
    }
    throw err;
  } finally {
    await db.end();
  }
}

function findingLine(f: StoredFinding): string {
  const what = f.kind ? `${f.drift} ${f.kind} ${f.name}` : `${f.dim}=${f.count ?? 'not computed'}: ${f.detail ?? ''}`;
  const seen = `first seen ${f.first_seen}, last seen ${f.last_seen} (${f.ticks} tick${f.ticks === 1 ? '' : 's'})`;
  return `  #${f.finding_id} ${f.dim}${f.hard ? ' (hard)' : ''} ${what} — ${seen}${f.resolved_at ? ` — resolved ${f.resolved_at}: ${f.resolved_by}` : ''}`;
}

export const commands: Command[] = [
  {
    name: 'drift',
    summary: "the drift watch's findings, with first and last seen (exit 3 while any is open: admissions are blocked)",
    usage: 'drift [--json] [--resolved N]   (N: also the latest N resolved findings)',
    options: [['--resolved N', 'also list the latest N resolved findings (0–9999)']],
    examples: ['birthgate drift', 'birthgate drift --resolved 10 --json'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, { resolved: { type: 'string' } });
      const resolvedText = str(v.resolved) ?? '0';
      if (!/^\d{1,4}$/.test(resolvedText)) throw new UsageError('--resolved expects a number of findings (0–9999)');
      const r = await withOperator(ctx, 'drift', (db, api) => api.driftFindings(db, { resolved: Number(resolvedText) }));
      if (v.json) {
        ctx.out(JSON.stringify(r, null, 2));
      } else {
        ctx.out(r.watch?.lastTickAt
          ? `drift watch: last tick ${r.watch.lastTickAt} by ${r.watch.lastTickBy} (${r.watch.ticks} ticks)`
          : 'drift watch: it has not ticked yet (`birthgate schedules` shows whether its Schedule exists)');
        if (r.open.length === 0) ctx.out('no open findings');
        else {
          ctx.out(`${r.open.length} open finding(s) — every admission is blocked until they clear:`);
          for (const f of r.open) ctx.out(findingLine(f));
          ctx.out('  a catalog change is accepted only by: birthgate rebaseline --owner O --reason R [--approval ID]; data-level findings clear when the data is repaired');
        }
        if (r.resolved.length) {
          ctx.out('resolved:');
          for (const f of r.resolved) ctx.out(findingLine(f));
        }
      }
      if (r.open.length > 0) ctx.err('next: repair the data, or have the owner accept a catalog change: `birthgate rebaseline --owner O --reason R [--approval ID]`');
      return r.open.length > 0 ? EXIT.waiting : EXIT.done;
    },
  },
  {
    name: 'rebaseline',
    summary: 'accept what the drift watch reports as the new baseline (logged: owner, reason, approval, login; exit 3 if findings remain)',
    usage: 'rebaseline --owner O --reason R [--approval ID] [--json]',
    options: [
      ['--owner O', 'the estate owner who accepts the change (required, logged)'],
      ['--reason R', 'why (required, logged)'],
      ['--approval ID', 'the change or approval id (logged; default none)'],
    ],
    examples: ['birthgate rebaseline --owner estate-owner --reason "guard trigger drill, re-enabled" --approval CHG-917'],
    async run(argv, ctx) {
      const { values: v } = parseFlags(argv, { owner: { type: 'string' }, reason: { type: 'string' }, approval: { type: 'string' } });
      for (const required of ['owner', 'reason']) {
        if (!str(v[required])) throw new UsageError(`--${required} is required`);
      }
      const request = { owner: str(v.owner)!, reason: str(v.reason)!, approvalId: str(v.approval) ?? 'none' };
      const r = await withOperator(ctx, 'rebaseline', (db, api) => api.rebaseline(db, request));
      if (v.json) {
        ctx.out(JSON.stringify(r, null, 2));
      } else {
        ctx.out(`baseline set ${r.baseline_set} captured (${r.rows_captured} fingerprints) for owner ${request.owner}, approval ${request.approvalId}`);
        if (r.accepted.length === 0) ctx.out('accepted: nothing differed from the previous set');
        else {
          ctx.out(`accepted ${r.accepted.length} catalog change(s):`);
          for (const a of r.accepted) ctx.out(`  ${a.drift} ${a.kind} ${a.name}${a.actual ? ` (${a.actual})` : ''}`);
        }
        ctx.out(`findings resolved: ${r.watch.resolved}; still open: ${r.watch.open}`);
        for (const f of r.watch.findings) ctx.out(`  ${f.dim}${f.kind ? ` ${f.drift} ${f.kind} ${f.name}` : `=${f.count ?? 'not computed'}: ${f.detail ?? ''}`}`);
      }
      const remaining = (r.remaining_findings ?? 1) > 0 || r.watch.open > 0;
      if (remaining) ctx.err('next: the findings listed above are still open: data-level ones clear when the data is repaired; `birthgate drift` follows them');
      return remaining ? EXIT.waiting : EXIT.done;
    },
  },
];
