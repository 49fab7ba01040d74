// birthgate admit | status | retry | break-glass | cancel | rollback | stuck — the admission verbs.
// Thin: parse and validate the arguments against the admission contract (refused input: exit 2 before
// anything is sent), call client/admissions.ts, print. No SQL here (cli/README). The Temporal SDK and
// the client load when a verb runs, not for --help or a usage error.
import os from 'node:os';
import type { Client } from '@temporalio/client';
import { z } from 'zod';
import type { StuckBirth } from '../../client/admissions.ts';
import {
  Actor,
  AdmissionInput,
  type AdmissionState,
  ApprovalId,
  CollectionName,
  DEFAULT_COLLECTION,
  EntityCode,
  FailureType,
  Reason,
} from '../../contracts/admission.ts';
import { parseFlags, str, type Flags } from '../args.ts';
import { CliError, EXIT, UsageError, type CliContext, type Command } from '../command.ts';
import { shown } from '../errors.ts';

function parse(argv: string[], flags: Flags, positionals: number) {
  return parseFlags(argv, { collection: { type: 'string' }, ...flags }, { positionals, what: 'CODE' });
}

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
        throw new UsageError(`--field ${shown(typed[1]!, 40)}:= needs a JSON scalar, got ${shown(typed[2]!)}`);
      }
      if (value !== null && !['number', 'boolean', 'string'].includes(typeof value)) throw new UsageError(`--field ${shown(typed[1]!, 40)}:= must be a scalar`);
      fields[typed[1]!] = value as string | number | boolean | null;
    } else if (plain) {
      fields[plain[1]!] = plain[2]!;
    } else {
      throw new UsageError(`--field expects k=v (or k:=json), got ${shown(pair)}`);
    }
  }
  return fields;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };
/** "90s", "10m", "2h", "1d" → milliseconds. */
export function parseDuration(text: string, flag = '--older-than'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} expects a duration like 30s, 10m, 2h or 1d; got ${shown(text)}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** A refused field name or value, bounded: the input is named, never echoed at length (cli/errors.ts). */
function describeInput(error: z.ZodError): string {
  const segment = (p: PropertyKey) => (typeof p === 'string' && /^[a-z_][a-z0-9_]{0,62}$/.test(p) ? p : shown(String(p), 40));
  return error.issues
    .map((i) => {
      const nested = (i as { issues?: { message: string }[] }).issues?.map((n) => n.message).join(', ');
      const message = nested ? `${i.message}: ${nested}` : i.message;
      return i.path.length ? `${i.path.map(segment).join('.')}: ${message}` : message;
    })
    .join('; ');
}

/** The contract's own schema at the CLI's boundary: refused here, nothing is sent (exit 2). */
function checked<S extends z.core.$ZodType>(schema: S, raw: unknown): z.output<S> {
  const r = z.safeParse(schema, raw);
  if (!r.success) throw new UsageError(describeInput(r.error));
  return r.data;
}

const Ref = z.strictObject({ collection: z._default(CollectionName, DEFAULT_COLLECTION), code: EntityCode });
const ref = (code: string, collection: string | undefined) => checked(Ref, { code, collection });

type Api = typeof import('../../client/admissions.ts');

/**
 * Connect, run, and map the client's refusals to the exit codes (README): 2 refused input, nothing
 * sent; 3 the admission refused the operator's decision (the reason is printed); 1 failed.
 */
async function withClient(ctx: CliContext, code: string, fn: (client: Client, api: Api) => Promise<number>): Promise<number> {
  const { temporalAddress, namespace } = await ctx.endpoints();
  const sdk = await import('@temporalio/client');
  const api = await import('../../client/admissions.ts');
  const connection = await sdk.Connection.connect({ address: temporalAddress });
  try {
    return await fn(new sdk.Client({ connection, namespace }), api);
  } catch (err) {
    if (err instanceof api.AdmissionInputError) {
      throw new CliError(err.message, EXIT.refused, { code: 'REFUSED', next: `nothing was sent: \`birthgate status ${code}\` shows the admission that is there` });
    }
    if (err instanceof api.DecisionRefusedError) {
      throw new CliError(`refused: ${err.message}`, EXIT.waiting, { code: 'REFUSED', next: `nothing was changed: \`birthgate status ${code}\` shows its stage and what it waits for` });
    }
    if (err instanceof api.NoWorkerError) {
      throw new CliError(err.message, EXIT.failed, { code: 'NO_WORKER', next: `start one with \`birthgate worker\` (it polls BIRTHGATE_TASK_QUEUE, here ${ctx.config.taskQueue})` });
    }
    if (err instanceof sdk.WorkflowNotFoundError) {
      throw new CliError(`no such admission: ${err.message}`, EXIT.refused, { code: 'NOT_FOUND', next: '`birthgate stuck` lists the parked ones; an admission into another collection needs --collection C' });
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

const print = (ctx: CliContext, json: boolean, value: unknown, human: () => string[]) => {
  if (json) ctx.out(JSON.stringify(value, null, 2));
  else for (const line of human()) ctx.out(line);
};

/** admit --wait: a line on stderr every 10 s with the admission's stage, so a long wait shows it is alive. */
function waitTicker(ctx: CliContext, client: Client, api: Api, code: string, collection: string): () => void {
  const started = Date.now();
  const timer = setInterval(() => {
    void api.status(client, { code, collection }, { queryTimeoutMs: 3_000 })
      .then((s) => ctx.err(`  ${code}: ${s.state?.stage ?? s.status} after ${Math.round((Date.now() - started) / 1000)} s …`))
      .catch(() => undefined);
  }, 10_000);
  timer.unref();
  return () => clearInterval(timer);
}

export const commands: Command[] = [
  {
    name: 'admit',
    summary: 'admit a code: preflight → permit → insert → finalize (a second admit attaches to the same admission)',
    usage: 'admit CODE [--collection C] [--field k=v …] [--actor A] [--wait] [--timeout D] [--json]   (exit 3 when it parks for an operator)',
    options: [
      ['--collection C', `the governed collection (default ${DEFAULT_COLLECTION})`],
      ['--field k=v', 'a column value for the row (repeatable; k:=json for a number, boolean or null)'],
      ['--actor A', 'who asks (default: your login name)'],
      ['--wait', 'wait until it is born (exit 0) or parks for an operator (exit 3)'],
      ['--timeout D', 'wait at most D (30s, 10m, 2h); still running then: exit 3'],
    ],
    examples: ['birthgate admit DOT-1234 --wait', 'birthgate admit DOT-1234 --field name="Tool 1234" --wait --json'],
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { field: { type: 'string', multiple: true }, wait: { type: 'boolean' }, actor: { type: 'string' }, timeout: { type: 'string' } }, 1);
      const timeout = str(values.timeout);
      const timeoutMs = timeout ? parseDuration(timeout, '--timeout') : undefined;
      const input = checked(AdmissionInput, {
        code: positionals[0]!,
        collection: str(values.collection),
        fields: parseFields((values.field as string[] | undefined) ?? []),
        requestedBy: str(values.actor) ?? whoami(),
      });
      const wait = values.wait === true || timeoutMs !== undefined;
      return withClient(ctx, input.code, async (client, api) => {
        const sdk = await import('@temporalio/client');
        if (wait) ctx.err(`admitting ${input.collection} ${input.code}: waiting until it is born (exit 0) or parks for an operator (exit 3)${timeout ? `, at most ${timeout}` : ''} …`);
        const stopTicker = wait ? waitTicker(ctx, client, api, input.code, input.collection) : () => undefined;
        try {
          const a = await api.admitByCode(client, input, { taskQueue: ctx.config.taskQueue, wait, timeoutMs, requireWorker: true });
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
          if (a.rolledBack) {
            ctx.err(`next: its birth is retired history; \`birthgate status ${input.code}\` shows it`);
            return EXIT.failed;
          }
          return a.parked || a.timedOut ? EXIT.waiting : EXIT.done;
        } catch (err) {
          if (!(err instanceof sdk.WorkflowFailedError)) throw err;
          let born: Error | undefined;
          for (let e: unknown = err; e instanceof Error; e = e.cause) {
            if (!born && e instanceof sdk.ApplicationFailure && e.type === FailureType.ALREADY_BORN) born = e;
          }
          if (born) {
            // Refused, nothing changed: the code has its birth already (exit 2).
            throw new CliError(`admission of ${input.code} refused: ${born.message}`, EXIT.refused, { code: FailureType.ALREADY_BORN, next: `\`birthgate status ${input.code}\` shows its birth` });
          }
          const cause = err.cause as (Error & { type?: string }) | undefined;
          throw new CliError(`admission of ${input.code} did not finalize: ${cause?.type ?? cause?.name ?? 'FAILED'}: ${cause?.message ?? err.message}`, EXIT.failed, {
            code: cause?.type ?? 'FAILED',
            next: `\`birthgate status ${input.code}\` shows its transitions and the error; its history is in the Web UI`,
          });
        } finally {
          stopTicker();
        }
      });
    },
  },
  {
    name: 'status',
    summary: "an admission's stage, permit, row, birth, blockers and transitions",
    usage: 'status CODE [--collection C] [--json]',
    options: [['--collection C', `the collection it was admitted into (default ${DEFAULT_COLLECTION})`]],
    examples: ['birthgate status DOT-1234', 'birthgate status DOT-1234 --json'],
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, {}, 1);
      const r = ref(positionals[0]!, str(values.collection));
      return withClient(ctx, r.code, async (client, api) => {
        const s = await api.status(client, r);
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
        if (!s.state) ctx.err(`next: no worker answered: start one with \`birthgate worker\` (task queue ${ctx.config.taskQueue})`);
        return EXIT.done;
      });
    },
  },
  {
    name: 'retry',
    summary: 're-run the stop-condition checks of a stuck birth (or a failed compensation); exit 3 when the admission refuses',
    usage: 'retry CODE [--collection C] [--actor A] [--reason R] [--json]',
    options: [
      ['--collection C', `its collection (default ${DEFAULT_COLLECTION})`],
      ['--actor A', 'who decides (default: your login name)'],
      ['--reason R', 'why (recorded with the decision)'],
    ],
    examples: ['birthgate retry Tool_1234 --reason "code rule repaired"'],
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' } }, 1);
      const r = ref(positionals[0]!, str(values.collection));
      const payload = checked(z.strictObject({ actor: Actor, reason: z.optional(Reason) }), { actor: str(values.actor) ?? whoami(), reason: str(values.reason) });
      return withClient(ctx, r.code, async (client, api) => {
        const ack = await api.retry(client, r, payload);
        print(ctx, values.json === true, { ...r, ...ack }, () => [`retry accepted by ${r.code}: ${ack.note}`]);
        return EXIT.done;
      });
    },
  },
  {
    name: 'break-glass',
    summary: 'admit a stuck birth past the gate under a break-glass ledger entry (exit 3 when the database or the admission refuses)',
    usage: 'break-glass CODE --actor A --reason R --approval ID [--collection C] [--json]',
    options: [
      ['--actor A', 'the operator who breaks the glass (required)'],
      ['--reason R', 'why (required, in the ledger)'],
      ['--approval ID', 'the approval or change id (required, in the ledger)'],
      ['--collection C', `its collection (default ${DEFAULT_COLLECTION})`],
    ],
    examples: ['birthgate break-glass Tool_1234 --actor ana --reason "owner approved the exception" --approval CHG-1'],
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' }, approval: { type: 'string' } }, 1);
      for (const required of ['actor', 'reason', 'approval']) {
        if (!str(values[required])) throw new UsageError(`--${required} is required`);
      }
      const r = ref(positionals[0]!, str(values.collection));
      const request = checked(z.strictObject({ actor: Actor, reason: Reason, approvalId: ApprovalId }), {
        actor: str(values.actor), reason: str(values.reason), approvalId: str(values.approval),
      });
      // SECURITY.md: the ledger entry is opened with the operator's own database login
      // (BIRTHGATE_OPERATOR_DATABASE_URL; on the embedded stack the superuser URL), then signalled.
      const { operatorDatabaseUrl } = await ctx.endpoints();
      const { createPool } = await import('../../db/pool.ts');
      return withClient(ctx, r.code, async (client, api) => {
        const db = createPool(operatorDatabaseUrl, { max: 1, applicationName: 'birthgate-break-glass' });
        try {
          const { breakGlassId, note } = await api.breakGlass(client, db, r, request);
          print(ctx, values.json === true, { ...r, breakGlassId, note }, () => [`break-glass entry ${breakGlassId} opened; ${r.code} accepted it: ${note}`]);
          return EXIT.done;
        } catch (err) {
          const code = (err as { code?: string }).code;
          // The database refused the operator's act: nothing changed, a human decides what now.
          if (code && /^BG4/.test(code)) {
            throw new CliError(`break-glass refused by the database (${code}): ${(err as Error).message}`, EXIT.waiting, {
              code,
              next: `nothing was changed: \`birthgate status ${r.code}\` shows its blockers; \`birthgate drift\` the findings that hold every admission`,
            });
          }
          if (code === '42501') {
            throw new CliError(`break-glass refused by the database (42501): ${(err as Error).message}`, EXIT.refused, {
              code,
              next: 'use an operator login (a member of birthgate_operator): BIRTHGATE_OPERATOR_DATABASE_URL',
            });
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
    summary: 'abandon an admission: compensations run, the permit ends CANCELLED (exit 3 when the admission refuses)',
    usage: 'cancel CODE [--collection C] [--actor A] [--reason R] [--json]',
    options: [
      ['--collection C', `its collection (default ${DEFAULT_COLLECTION})`],
      ['--actor A', 'who decides (default: your login name)'],
      ['--reason R', 'why (recorded)'],
    ],
    examples: ['birthgate cancel Tool_1234 --reason "not needed any more"'],
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' } }, 1);
      const r = ref(positionals[0]!, str(values.collection));
      const actor = str(values.actor) ?? whoami();
      const payload = checked(z.strictObject({ actor: Actor, reason: Reason }), { actor, reason: str(values.reason) ?? `cancelled by ${actor} from the CLI` });
      return withClient(ctx, r.code, async (client, api) => {
        const ack = await api.cancel(client, r, payload);
        print(ctx, values.json === true, { ...r, ...ack }, () => [`cancel accepted by ${r.code}: ${ack.note}`]);
        return EXIT.done;
      });
    },
  },
  {
    name: 'rollback',
    summary: 'undo an admission: while running, compensations; once finalized, the birth is retired',
    usage: 'rollback CODE [--collection C] [--actor A] [--reason R] [--json]',
    options: [
      ['--collection C', `its collection (default ${DEFAULT_COLLECTION})`],
      ['--actor A', 'who decides (default: your login name)'],
      ['--reason R', 'why (recorded)'],
    ],
    examples: ['birthgate rollback DOT-1234 --reason "admitted by mistake"'],
    // `rollback --to N` is the packet's; an admission rollback names a CODE.
    accepts: (args) => args.some((a) => !a.startsWith('-')),
    async run(argv, ctx) {
      const { values, positionals } = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' } }, 1);
      const r = ref(positionals[0]!, str(values.collection));
      const actor = str(values.actor) ?? whoami();
      const payload = checked(z.strictObject({ actor: Actor, reason: Reason }), { actor, reason: str(values.reason) ?? `rolled back by ${actor} from the CLI` });
      return withClient(ctx, r.code, async (client, api) => {
        let rolled;
        try {
          rolled = await api.rollback(client, r, payload, { taskQueue: ctx.config.taskQueue });
        } catch (err) {
          // The client's refusal when there is no birth to retire: nothing changed.
          if (err instanceof Error && /^nothing to roll back/.test(err.message)) {
            throw new CliError(err.message, EXIT.refused, { code: 'REFUSED', next: `\`birthgate status ${r.code}\` shows how the admission ended` });
          }
          throw err;
        }
        print(ctx, values.json === true, rolled, () => [
          rolled.via === 'signal' ? `rolled back before birth: ${rolled.workflowId}` : `birth ${rolled.birthId} retired (permit ${rolled.permitId})`,
        ]);
        return EXIT.done;
      });
    },
  },
  {
    name: 'stuck',
    summary: 'stuck births: admissions waiting for an operator (BLOCKED, COMPENSATION_FAILED, or their workflow task keeps failing)',
    usage: 'stuck [--older-than D] [--json]',
    options: [['--older-than D', 'only those stuck longer than D (30s, 10m, 2h, 1d)']],
    examples: ['birthgate stuck', 'birthgate stuck --older-than 1h --json'],
    async run(argv, ctx) {
      const { values } = parseFlags(argv, { 'older-than': { type: 'string' } });
      const olderThan = str(values['older-than']);
      const olderThanMs = olderThan ? parseDuration(olderThan) : undefined;
      return withClient(ctx, 'CODE', async (client, api) => {
        const stuck = await api.listStuck(client, { olderThanMs });
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
        return EXIT.done;
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
