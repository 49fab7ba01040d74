// Turning what goes wrong into ApplicationFailures with the contract's failure types, so the
// workflow's retry policies can tell a refusal the database made on purpose (never retried) from a
// lost connection (retried). CONTRACT.md "Errors" lists the SQLSTATEs.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { z } from 'zod';
import { describeIssues, FailureType, sqlStateFailureType } from '../contracts/admission.ts';

// Class 08 connection exceptions, 57P01-03 shutdown, 53xxx resources, 40001/40P01 serialization and
// deadlock, 55P03 lock timeout, 57014 statement timeout: the same call may well succeed next time.
const TRANSIENT_SQLSTATE = /^(08|53|57P0|40001|40P01|55P03|57014)/;
const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

type PgLikeError = Error & { code?: string; detail?: string; hint?: string };

/**
 * Refusals that can never succeed on a retry: SQLSTATE class 22 (data exception: the value itself is
 * wrong) and class 23 (integrity constraint violation: a duplicate `dot_tools.code`, a foreign key, a
 * check). The contract names the usual ones (sqlStateFailureType); any other code of the two classes
 * is refused the same way here, so a duplicate fails on its first attempt instead of retrying for
 * minutes.
 */
function failureTypeOf(code: string): FailureType | undefined {
  return sqlStateFailureType[code]
    ?? (code.startsWith('22') ? FailureType.INVALID_INPUT : code.startsWith('23') ? FailureType.CONSTRAINT_VIOLATION : undefined);
}

/** An activity's failure: an ApplicationFailure with a contract type, or the SDK's CancelledFailure as it came. */
export function toFailure(err: unknown, what: string): ApplicationFailure | CancelledFailure {
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  const e = (err instanceof Error ? err : new Error(String(err))) as PgLikeError;
  const code = e.code ?? '';
  const message = `${what}: ${e.message}${e.detail ? ` (${e.detail})` : ''}`;
  const mapped = failureTypeOf(code);
  if (mapped) return ApplicationFailure.create({ message, type: mapped, nonRetryable: true, details: [{ sqlState: code }] });
  if (TRANSIENT_SQLSTATE.test(code) || TRANSIENT_NODE_CODES.has(code) || /Connection terminated|timeout/i.test(e.message)) {
    return ApplicationFailure.create({ message, type: FailureType.DATABASE_UNAVAILABLE, cause: e });
  }
  return ApplicationFailure.create({ message, type: FailureType.DATABASE_ERROR, details: [{ sqlState: code || null }], cause: e });
}

/** Run one database step; whatever it throws leaves as a typed ApplicationFailure. */
export async function dbStep<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toFailure(err, what);
  }
}

/** zod at the activity boundary: a malformed input is a bug upstream, never worth a retry. */
export function parseInput<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw ApplicationFailure.create({
    message: `${what}: invalid input: ${describeIssues(parsed.error)}`,
    type: FailureType.INVALID_INPUT,
    nonRetryable: true,
  });
}

export function nonRetryable(type: FailureType, message: string, details?: unknown): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: true, details: details === undefined ? undefined : [details] });
}
