// birthgate admit | status | retry | break-glass | cancel | rollback | stuck — the admission verbs.
// Thin: parse and validate the arguments, call client/admissions.ts, print. No SQL here (cli/README).
import os from 'node:os';
import { parseArgs } from 'node:util';
import { ApplicationFailure, Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import {
  AdmissionInputError,
  admitByCode,
  breakGlass,
  cancel,
  DecisionRefusedError,
  listStuck,
  NoWorkerError,
  retry,
  rollback,
  status,
  type StuckBirth,
} from '../../client/admissions.ts';
import { type AdmissionState, DEFAULT_COLLECTION, FailureType } from '../../contracts/admission.ts';
import { createPool } from '../../db/pool.ts';
import { UsageError, type CliContext, type Command } from '../command.ts';

type Options = Record<string, { type: 'boolean' | 'string'; multiple?: boolean }>;

function parse(argv: string[], options: Options, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { collection: { type: 'string' }, json: { type: 'boolean' }, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (parsed.positionals.length !== positionals) {
    throw new UsageError(positionals === 1 ? 'expected exactly one CODE' : `expected ${positionals} positional arguments`);
  }
  return { values: parsed.values as Record<string, string | boolean | string[] | undefined>, positionals: parsed.positionals };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const whoami = () => process.env.USER || os.userInfo().username || 'operator';

/** `k=v` → string, `k:=json` → a JSON scalar (number, boolean, null). */
export function parseFields(pairs: string[]): Record<string, string | number | boolean | null> {
  const fields: Record<string, string | number | boolean | null> = {};
  for (const pair of pairs) {
    const typed = /^([^=:]+):=(.*)$/s.exec(pair);
    const plain = /^([^=]+)=(.*)$/s.exec(pair);
    if (typed) {
      let value: unknown;
      try {
        value = JSON.parse(typed[2]!);
      } catch {
        throw new UsageError(`--field ${typed[1]}:= needs a JSON scalar, got ${typed[2]}`);
      }
      if (value !== null && !['number', 'boolean', 'string'].includes(typeof value)) throw new UsageError(`--field ${typed[1]}:= must be a scalar`);
      fields[typed[1]!] = value as string | number | boolean | null;
    } else if (plain) {
      fields[plain[1]!] = plain[2]!;
    } else {
      throw new UsageError(`--field expects k=v (or k:=json), got ${pair}`);
    }
  }
  return fields;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };
/** "90s", "10m", "2h", "1d" → milliseconds. */
export function parseDuration(text: string, flag = '--older-than'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} expects a duration like 30s, 10m, 2h or 1d; got ${text}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/**
 * The exit codes (README): 2 refused input, nothing sent; 3 the admission refused the operator's
 * decision (the reason is printed) or waits for a human; 1 failed.
 */
async function withClient(ctx: CliContext, fn: (client: Client) => Promise<number>): Promise<number> {
  const { temporalAddress, namespace } = await ctx.endpoints();
  const connection = await Connection.connect({ address: temporalAddress });
  try {
    return await fn(new Client({ connection, namespace }));
  } catch (err) {
    if (err instanceof AdmissionInputError) throw new UsageError(err.message);
    if (err instanceof DecisionRefusedError) {
      ctx.err(`refused: ${err.message}`);
      return 3;
    }
    if (err instanceof NoWorkerError) {
      ctx.err(err.message);
      return 1;
    }
    if (err instanceof WorkflowNotFoundError) {
      ctx.err(`no such admission: ${err.message} (\`birthgate stuck\` lists the parked ones)`);
      return 2;
    }
    throw err;
  } finally {
    await connection.close();
  }
}

/** What a parked admission needs, and the commands that give it. */
function parkedLines(code: string, st: AdmissionState): string[] {
  return [
    `${code} is ${st.stage}: waiting for ${st.waitingFor ?? 'an operator'}`,
    ...st.blockers.map((b) => `  blocker ${b.kind}${b.hard ? ' (hard: no break-glass)' : ''}: ${b.detail}`),
    `  resolve: birthgate retry ${code}   |   birthgate break-glass ${code} --actor A --reason R --approval ID   |   birthgate cancel ${code}`,
  ];
}

/** The first failure of `type` in err's cause chain. */
function causeOfType(err: unknown, type: string): ApplicationFailure | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof ApplicationFailure && e.type === type) return e;
  }
  return undefined;
}

/** A failed admission as one line: the failure type and the reason, not a stack. */
function failureLine(err: unknown): string {
  if (err instanceof WorkflowFailedError) {
    const cause = err.cause as (Error & { type?: string }) | undefined;
    return `${cause?.type ?? cause?.name ?? 'FAILED'}: ${cause?.message ?? err.message}`;
  }
  return (err as Error).message;
}

const print = (ctx: CliContext, json: boolean, value: unknown, human: () => string[]) => {
  if (json) ctx.out(JSON.stringify(value, null, 2));
  else for (const line of human()) ctx.out(line);
};

export const commands: Command[] = [
  {
    name: 'admit',
    summary: 'admit a code: preflight → permit → insert → finalize (a second admit attaches to the same admission)',
    usage: 'admit CODE [--collection C] [--field k=v …] [--actor A] [--wait] [--timeout D] [--json]   (exit 3 when it parks for an operator)',
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { field: { type: 'string', multiple: true }, wait: { type: 'boolean' }, actor: { type: 'string' }, timeout: { type: 'string' } }, 1);
      const timeout = str(values.timeout);
      const timeoutMs = timeout ? parseDuration(timeout, '--timeout') : undefined;
      const input = {
        code: positionals[0]!,
        collection: str(values.collection) ?? DEFAULT_COLLECTION,
        fields: parseFields((values.field as string[] | undefined) ?? []),
        requestedBy: str(values.actor) ?? whoami(),
      };
      return withClient(ctx, async (client) => {
        try {
          const a = await admitByCode(client, input, { taskQueue: ctx.config.taskQueue, wait: values.wait === true || timeoutMs !== undefined, timeoutMs, requireWorker: true });
          print(ctx, values.json === true, a, () =>
            a.rolledBack
              ? [`ROLLED_BACK: ${input.collection} ${input.code} was born, then rolled back — birth ${a.rolledBack.birthId} retired at ${a.rolledBack.retiredAt}`]
              : a.result
                ? [`born: ${a.result.collection} ${a.result.code} · permit ${a.result.permitId} · row ${a.result.rowId} · birth ${a.result.birthId}${a.result.breakGlass ? ' · break-glass' : ''}`]
                : a.parked
                  ? parkedLines(input.code, a.parked)
                  : a.timedOut
                    ? [`${input.code} still running after ${timeout} (\`birthgate status ${input.code}\` follows it)`]
                    : [`admission ${a.workflowId} ${a.running ? 'running' : 'closed'} (\`birthgate status ${input.code}\` follows it)`],
          );
          if (a.rolledBack) return 1;
          return a.parked || a.timedOut ? 3 : 0;
        } catch (err) {
          if (!(err instanceof WorkflowFailedError)) throw err;
          const born = causeOfType(err, FailureType.ALREADY_BORN);
          if (born) {
            // Refused, nothing changed: the code has its birth already (exit 2).
            ctx.err(`admission of ${input.code} refused: ${born.message}`);
            return 2;
          }
          ctx.err(`admission of ${input.code} did not finalize: ${failureLine(err)}`);
          return 1;
        }
      });
    },
  },
  {
    name: 'status',
    summary: "an admission's stage, permit, row, birth, blockers and transitions",
    usage: 'status CODE [--collection C] [--json]',
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, {}, 1);
      return withClient(ctx, async (client) => {
        const s = await status(client, { code: positionals[0]!, collection: str(values.collection) });
        print(ctx, values.json === true, s, () => {
          const st = s.state;
          if (!st) return [`${s.workflowId}: ${s.status} (no worker answered the state query)`];
          if (s.rolledBack) return [`${s.workflowId}: ROLLED_BACK (birth ${s.rolledBack.birthId} retired at ${s.rolledBack.retiredAt}; permit ${s.rolledBack.permitId})`];
          return [
            `${s.workflowId}: ${st.stage} (${s.status})`,
            ...(st.waitingFor ? [`  waiting for: ${st.waitingFor}`] : []),
            ...st.blockers.map((b) => `  blocker ${b.kind}: ${b.detail}`),
            ...(st.permit ? [`  permit ${st.permit.permitId} ${st.permit.state}${st.permit.breakGlass ? ' (break-glass)' : ''}`] : []),
            ...(st.row ? [`  row ${st.row.rowId}`] : []),
            ...(st.birth ? [`  birth ${st.birth.birthId} ${st.birth.status ?? ''}`] : []),
            ...(st.error ? [`  error ${st.error.type}: ${st.error.message}`] : []),
            ...st.transitions.map((x) => `  ${x.at} ${x.stage}${x.note ? ` — ${x.note}` : ''}`),
          ];
        });
        return 0;
      });
    },
  },
  {
    name: 'retry',
    summary: 're-run the stop-condition checks of a stuck birth (or a failed compensation)',
    usage: 'retry CODE [--collection C] [--actor A] [--reason R]',
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' } }, 1);
      return withClient(ctx, async (client) => {
        const ack = await retry(client, { code: positionals[0]!, collection: str(values.collection) }, { actor: str(values.actor) ?? whoami(), reason: str(values.reason) });
        ctx.out(`retry accepted by ${positionals[0]}: ${ack.note}`);
        return 0;
      });
    },
  },
  {
    name: 'break-glass',
    summary: 'admit a stuck birth past the gate under a break-glass ledger entry',
    usage: 'break-glass CODE --actor A --reason R --approval ID [--collection C]',
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' }, approval: { type: 'string' } }, 1);
      for (const required of ['actor', 'reason', 'approval']) {
        if (!str(values[required])) throw new UsageError(`--${required} is required`);
      }
      // SECURITY.md: the ledger entry is opened with the operator's own database login
      // (BIRTHGATE_OPERATOR_DATABASE_URL; on the embedded stack the superuser URL), then signalled.
      const { operatorDatabaseUrl } = await ctx.endpoints();
      return withClient(ctx, async (client) => {
        const db = createPool(operatorDatabaseUrl, { max: 1, applicationName: 'birthgate-break-glass' });
        try {
          const { breakGlassId, note } = await breakGlass(client, db, { code: positionals[0]!, collection: str(values.collection) }, {
            actor: str(values.actor)!,
            reason: str(values.reason)!,
            approvalId: str(values.approval)!,
          });
          ctx.out(`break-glass entry ${breakGlassId} opened; ${positionals[0]} accepted it: ${note}`);
          return 0;
        } catch (err) {
          const code = (err as { code?: string }).code;
          // The database refused the operator's act: refused input, nothing changed.
          if (code && /^BG4/.test(code)) {
            ctx.err(`break-glass refused by the database (${code}): ${(err as Error).message}`);
            return 3;
          }
          throw err;
        } finally {
          await db.end();
        }
      });
    },
  },
  {
    name: 'cancel',
    summary: 'abandon an admission: compensations run, the permit ends CANCELLED',
    usage: 'cancel CODE [--collection C] [--actor A] [--reason R]',
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' } }, 1);
      const actor = str(values.actor) ?? whoami();
      return withClient(ctx, async (client) => {
        const ack = await cancel(client, { code: positionals[0]!, collection: str(values.collection) }, { actor, reason: str(values.reason) ?? `cancelled by ${actor} from the CLI` });
        ctx.out(`cancel accepted by ${positionals[0]}: ${ack.note}`);
        return 0;
      });
    },
  },
  {
    name: 'rollback',
    summary: 'undo an admission: while running, compensations; once finalized, the birth is retired',
    usage: 'rollback CODE [--collection C] [--actor A] [--reason R] [--json]',
    // `rollback --to N` is the packet's; an admission rollback names a CODE.
    accepts: (args) => args.some((a) => !a.startsWith('-')),
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' } }, 1);
      const actor = str(values.actor) ?? whoami();
      return withClient(ctx, async (client) => {
        const r = await rollback(
          client,
          { code: positionals[0]!, collection: str(values.collection) },
          { actor, reason: str(values.reason) ?? `rolled back by ${actor} from the CLI` },
          { taskQueue: ctx.config.taskQueue },
        );
        print(ctx, values.json === true, r, () => [
          r.via === 'signal' ? `rolled back before birth: ${r.workflowId}` : `birth ${r.birthId} retired (permit ${r.permitId})`,
        ]);
        return 0;
      });
    },
  },
  {
    name: 'stuck',
    summary: 'stuck births: admissions waiting for an operator (BLOCKED, COMPENSATION_FAILED, or their workflow task keeps failing)',
    usage: 'stuck [--older-than D] [--json]',
    async run(argv, ctx) {
      const { values } = parse(argv, { 'older-than': { type: 'string' } }, 0);
      const olderThan = str(values['older-than']);
      return withClient(ctx, async (client) => {
        const stuck = await listStuck(client, { olderThanMs: olderThan ? parseDuration(olderThan) : undefined });
        // The first column says why: the parked stage, WORKFLOW_TASK_FAILING (a bad deploy: its
        // BirthStage is stale, its history in the Web UI shows the failure), or both.
        const why = (s: StuckBirth) => s.why.join('+');
        const width = Math.max(...stuck.map((s) => why(s).length));
        const detail = (s: StuckBirth) => [
          s.blockers.join('; ') || s.waitingFor,
          s.taskProblems.length > 0 ? `workflow task failing (${describeTaskProblems(s.taskProblems)})` : null,
        ].filter(Boolean).join(' · ');
        print(ctx, values.json === true, stuck, () =>
          stuck.length === 0
            ? ['no stuck births']
            : stuck.map((s) => `${why(s).padEnd(width)} ${s.collection} ${s.code}${s.permitId ? ` permit ${s.permitId}` : ''} since ${s.since ?? s.startTime} — ${detail(s)}`),
        );
        return 0;
      });
    },
  },
];

/** `category=WorkflowTaskFailed`, `cause=WorkflowTaskFailedCauseNonDeterministicError` → `WorkflowTaskFailed: NonDeterministicError`. */
function describeTaskProblems(problems: string[]): string {
  const value = (key: string) => problems.find((p) => p.startsWith(`${key}=`))?.slice(key.length + 1);
  const category = value('category') ?? problems.join(', ');
  const cause = value('cause')?.replace(/^WorkflowTaskFailedCause/, '');
  return cause ? `${category}: ${cause}` : category;
}
