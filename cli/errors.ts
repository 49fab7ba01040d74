// How the CLI says what went wrong: one bounded line, the exit code, and what to do next. Whatever a
// user typed is echoed clipped and with its control characters escaped, so a refused field name or
// option cannot carry a terminal escape, a forged `next:` line, or 20 KB back to the screen.
import { CliError, EXIT, UsageError, type CliContext } from './command.ts';

// C0/C1 controls, line/paragraph separators and the bidi overrides/isolates that disguise text.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

const escapeControls = (text: string): string =>
  text.replace(CONTROL, (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function clip(text: string, max: number): string {
  const cps = [...text];
  return cps.length > max ? `${cps.slice(0, max).join('')}…` : text;
}

/** User input fit to echo: quoted, control characters escaped, at most `max` characters. */
export function shown(text: string, max = 80): string {
  return `"${clip(escapeControls(text), max)}"`;
}

/**
 * A message from below the CLI (a client, a driver, the SDK) that may carry input somewhere inside:
 * control characters escaped, any unbroken run clipped, the whole bounded.
 */
export function safeMessage(message: string): string {
  return clip(escapeControls(message).replace(/\S{201,}/gu, (run) => clip(run, 80)), 2000);
}

const STACK_HINT = '`birthgate stack status` shows what is down; `birthgate stack up --detach` starts the embedded stack';

type PgLike = Error & { code?: unknown; errors?: Array<{ code?: unknown }> };

/** The errno or SQLSTATE of a driver error (an AggregateError of connection attempts: the first one's). */
function codeOf(err: PgLike): string | undefined {
  if (typeof err.code === 'string') return err.code;
  const first = err.errors?.[0]?.code;
  return typeof first === 'string' ? first : undefined;
}

/**
 * Any error a command let through, as a CliError: what went wrong in words, and what to do next for
 * the failures people meet (the stack down, a wrong password, an estate without the packet).
 */
export function explain(err: unknown): CliError {
  if (err instanceof CliError) return err;
  const e = err instanceof Error ? (err as PgLike) : new Error(String(err));
  const message = safeMessage(e.message || e.name);
  const code = codeOf(e);
  if (code && ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', '57P03'].includes(code)) {
    return new CliError(`cannot reach PostgreSQL (${code}): ${message}`, EXIT.failed, { code: 'DATABASE_UNREACHABLE', next: `${STACK_HINT} (or check DATABASE_URL)` });
  }
  if (/Failed to connect before the deadline|\b14 UNAVAILABLE\b|TransportError|tcp connect error/i.test(e.message) || e.name === 'TransportError') {
    return new CliError(`cannot reach Temporal: ${message}`, EXIT.failed, { code: 'TEMPORAL_UNREACHABLE', next: `${STACK_HINT} (or check TEMPORAL_ADDRESS)` });
  }
  switch (code) {
    case '28P01':
    case '28000':
      return new CliError(message, EXIT.failed, { code, next: 'check the login and password in the URL (the worker: BIRTHGATE_WORKER_PASSWORD, the password `birthgate apply` gave birthgate_worker)' });
    case '3D000':
      return new CliError(message, EXIT.failed, { code, next: 'check the database name in DATABASE_URL (the embedded stack: BIRTHGATE_DB_NAME)' });
    case '42P01':
    case '3F000':
    case '42883':
      return new CliError(message, EXIT.failed, { code, next: 'the estate or the packet is not there: `birthgate verify` shows what is; `birthgate world load --scale test`, then `birthgate apply`' });
    case '42501':
      return new CliError(message, EXIT.failed, { code, next: 'use a login that holds the grant (SECURITY.md: who may do what)' });
    case '55P03':
    case '40P01':
      return new CliError(message, EXIT.failed, { code, next: 'another session held what this needs: run it again once that is done' });
  }
  return new CliError(message, EXIT.failed, { code: code ?? 'FAILED', next: 'run it again with BIRTHGATE_DEBUG=1 to see where it failed' });
}

/**
 * Print a failure the same way for every verb: `birthgate <verb>: message` (the usage, for a usage
 * error) and `next: …` on stderr; with --json also `{ …details, "error": { code, message, next } }`
 * as the one JSON value on stdout. Returns the exit code.
 */
export function printError(ctx: Pick<CliContext, 'out' | 'err'>, o: { verb: string; usage?: string; json: boolean }, err: CliError): number {
  const message = safeMessage(err.message);
  const next = err.next ?? (err instanceof UsageError ? `\`birthgate ${o.verb} --help\` shows its options and an example` : undefined);
  ctx.err(`${o.verb ? `birthgate ${o.verb}` : 'birthgate'}: ${message}`);
  if (err instanceof UsageError && o.usage) ctx.err(`usage: birthgate ${o.usage}`);
  if (next) ctx.err(`next: ${next}`);
  if (o.json) ctx.out(JSON.stringify({ ...err.details, error: { code: err.code, message, next: next ?? null } }, null, 2));
  return err.exit;
}
