// birthgate apply | rollback | rehearse — the KB-7D57 apply packet, its rollbacks and the KB-3A66
// rehearsal, against the stack's database as the superuser (ctx.endpoints().databaseUrl). The
// packet runner (packet/) and the rehearsal (rehearsal/) do the work; this only parses and prints.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createPool } from '../../db/pool.ts';
import { applyPacket, rollbackPacket } from '../../packet/apply.ts';
import { PacketError, PacketFailure } from '../../packet/errors.ts';
import type { PacketEvent } from '../../packet/events.ts';
import { rehearse } from '../../rehearsal/rehearse.ts';
import { renderMarkdown } from '../../rehearsal/report.ts';
import { UsageError, type CliContext, type Command } from '../command.ts';

type Spec = Record<string, { type: 'boolean' | 'string' }>;

function parse<T extends z.ZodTypeAny>(argv: string[], spec: Spec, schema: T): z.output<T> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, options: spec, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const r = schema.safeParse(values);
  if (!r.success) throw new UsageError(r.error.issues.map((i) => `${i.path.length ? `--${i.path.join('.')}` : 'arguments'}: ${i.message}`).join('; '));
  return r.data;
}

const step = (name: string) => z.coerce.number({ error: `${name} must be a step number` }).int(`${name} must be a step number`).min(0).max(99);
const text = z.string().trim().min(1).max(200);

const ApplyArgs = z
  .object({
    through: step('--through').min(1).optional(),
    owner: text.optional(),
    approval: text.optional(),
    expect: z.string().regex(/^[0-9a-f]{64}$/, 'the governed hash from a rehearsal report (64 hex digits)').optional(),
    'report-dir': z.string().min(1).optional(),
    json: z.boolean().default(false),
  })
  .refine((a) => (a.owner === undefined) === (a.approval === undefined), { message: '--owner and --approval go together (KB-7D57 owner approval)', path: ['approval'] });

const RollbackArgs = z.object({ to: step('--to'), json: z.boolean().default(false) });
const RehearseArgs = z.object({ report: z.string().min(1).optional(), json: z.boolean().default(false) });

/** One progress line per event, to stderr (stdout stays for the result / --json). */
function printer(ctx: CliContext): (e: PacketEvent) => void {
  return (e) => {
    switch (e.type) {
      case 'run': return ctx.err(`${e.kind} run ${e.runId}${e.target === undefined ? '' : ` (target step ${e.target})`}`);
      case 'backup': return ctx.err(`backup → ${e.dir} (${e.files.length} files; pg_dump: ${e.pgDump.detail})`);
      case 'drift': return ctx.err(`entry drift check ${e.ok ? 'ok' : 'REFUSED'}: steps 1..${e.appliedThrough} applied${e.ok ? '' : `; ${e.checks.filter((c) => !c.ok).map((c) => `${c.check}: ${c.detail}`).join('; ')}`}`);
      case 'step': return e.phase === 'start' ? undefined : ctx.err(`step ${e.step} ${e.action} ${e.phase}${e.attempts ? ` after ${e.attempts} attempt(s)` : ''}${e.ms === undefined ? '' : ` in ${Math.round(e.ms)} ms`}${e.detail ? ` — ${e.detail}` : ''}`);
      case 'attempt': return e.ok ? undefined : ctx.err(`  step ${e.step} attempt ${e.attempt}: ${e.sqlstate ?? ''} ${e.message ?? ''}${e.backoffMs === undefined ? '' : `; retry in ${e.backoffMs} ms`}`);
      case 'leftover': return ctx.err(`  step ${e.step}: dropped INVALID leftover index ${e.index}`);
      case 'rollback': return ctx.err(`rolling back ${e.steps.join(', ')}: ${e.reason}`);
      case 'proof': return ctx.err(`catalog ${e.equal ? 'back at' : 'DIFFERS from'} the entry fingerprint${e.equal ? '' : `: ${e.diff.map((d) => d.path).join(', ')}`}`);
      case 'stopped': return ctx.err(e.reason);
      case 'notice': return undefined; // the DDL guard's warnings (KB-2590 §9) are in the server log
    }
  };
}

function failed(ctx: CliContext, json: boolean, err: unknown): number {
  if (!(err instanceof PacketError)) throw err;
  if (json) ctx.out(JSON.stringify({ ok: false, code: err.code, sqlstate: err.sqlstate ?? null, runId: err.runId ?? null, step: err.step ?? null, message: err.message, detail: err.detail ?? null }, null, 2));
  else ctx.err(`${err.code}: ${err.message}`);
  return exitCodeOf(err);
}

/**
 * The CLI's exit codes: 3 while the packet waits for a human (the one-way door without the owner's
 * approval), 2 for a refusal that changed nothing (a rollback whose preconditions fail, bad
 * request, a busy packet lock), 1 for a failure.
 */
export function exitCodeOf(err: PacketError): number {
  if (err.code === PacketFailure.Precondition) return /needs an owner approval/.test(err.message) ? 3 : 2;
  if (err.code === PacketFailure.BadRequest || err.code === PacketFailure.Busy) return 2;
  return 1;
}

async function withPool<T>(ctx: CliContext, name: string, fn: (pool: ReturnType<typeof createPool>, url: string) => Promise<T>): Promise<T> {
  const { databaseUrl } = await ctx.endpoints();
  // 3 connections: the advisory-lock session, the step's DDL session, the ledger writes.
  const pool = createPool(databaseUrl, { max: 4, applicationName: `birthgate-${name}` });
  try {
    return await fn(pool, databaseUrl);
  } finally {
    await pool.end();
  }
}

export const commands: Command[] = [
  {
    name: 'apply',
    summary: 'apply the KB-7D57 packet in order (backup, drift check, lock_timeout + retries); step 7 needs --owner/--approval',
    usage: 'apply [--through N] [--owner NAME --approval ID] [--expect GOVERNED_HASH] [--report-dir DIR] [--json]',
    async run(argv, ctx) {
      const a = parse(argv, { through: { type: 'string' }, owner: { type: 'string' }, approval: { type: 'string' }, expect: { type: 'string' }, 'report-dir': { type: 'string' }, json: { type: 'boolean' } }, ApplyArgs);
      return withPool(ctx, 'apply', async (pool, databaseUrl) => {
        try {
          const r = await applyPacket(pool, {
            through: a.through,
            owner: a.owner,
            approvalId: a.approval,
            expectGovernedHash: a.expect,
            reportDir: a['report-dir'] ?? path.join(ctx.config.home, 'reports'),
            databaseUrl,
            workerPassword: ctx.config.workerPassword,
            onEvent: a.json ? undefined : printer(ctx),
          });
          if (a.json) ctx.out(JSON.stringify({ ok: true, ...r }, null, 2));
          else {
            const applied = r.steps.filter((s) => s.action === 'up').map((s) => s.step);
            const skipped = r.steps.filter((s) => s.action === 'skip').map((s) => s.step);
            ctx.out(`applied through step ${r.through} (run ${r.runId}): ran ${applied.join(', ') || 'nothing'}; already applied ${skipped.join(', ') || 'none'}; birthgate_worker ${r.workerRole ? 'granted' : 'untouched'}`);
            ctx.out(`governed hash ${r.governedHash}`);
          }
          return 0;
        } catch (err) {
          return failed(ctx, a.json, err);
        }
      });
    },
  },
  {
    name: 'rollback',
    summary: 'roll the packet back to step N (downs in reverse; 0 = the entry state); step 7 refuses after a cross-collection birth',
    usage: 'rollback --to N [--json]',
    accepts: (args) => args.some((a) => a === '--to' || a.startsWith('--to=')),
    async run(argv, ctx) {
      const a = parse(argv, { to: { type: 'string' }, json: { type: 'boolean' } }, RollbackArgs);
      return withPool(ctx, 'rollback', async (pool) => {
        try {
          const r = await rollbackPacket(pool, { to: a.to, onEvent: a.json ? undefined : printer(ctx) });
          if (a.json) ctx.out(JSON.stringify({ ok: true, ...r }, null, 2));
          else ctx.out(`rolled back to step ${r.to} (run ${r.runId}): undid ${r.steps.filter((s) => s.action === 'down').map((s) => s.step).join(', ') || 'nothing (not applied)'}`);
          return 0;
        } catch (err) {
          return failed(ctx, a.json, err);
        }
      });
    },
  },
  {
    name: 'rehearse',
    summary: 'the whole packet in one BEGIN … ROLLBACK with the post-apply test plan; proves entry hash == exit hash (KB-3A66)',
    usage: 'rehearse [--report FILE] [--json]',
    async run(argv, ctx) {
      const a = parse(argv, { report: { type: 'string' }, json: { type: 'boolean' } }, RehearseArgs);
      return withPool(ctx, 'rehearse', async (pool) => {
        try {
          const r = await rehearse(pool, { report: a.report, onProgress: a.json ? undefined : (l) => ctx.err(l) });
          if (a.json) ctx.out(JSON.stringify(r, null, 2));
          else {
            ctx.out(renderMarkdown(r));
            if (r.files.length) ctx.err(`report written: ${r.files.join(', ')}`);
          }
          return r.status === 'PASS' ? 0 : 1;
        } catch (err) {
          return failed(ctx, a.json, err);
        }
      });
    },
  },
];
