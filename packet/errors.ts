// The packet runner's failure types, one enum (STYLE "failure types are an enum"). A Temporal
// activity maps them to ApplicationFailure types; `retryable` says whether a retry can help.
export const PacketFailure = {
  /** CONTRACT.md BG428: step 7 without an owner approval; step 7's rollback after a cross-collection birth. */
  Precondition: 'BG428',
  /** Another applier holds the packet's advisory lock. */
  Busy: 'PACKET_BUSY',
  /** The catalog is not the state the packet expects to start from (see packet/drift.ts). */
  EntryDrift: 'ENTRY_DRIFT',
  /** A step's up/down failed, or its verify disagrees afterwards. */
  StepFailed: 'STEP_FAILED',
  /** The automatic rollback ran but the catalog is not back to the entry fingerprint. */
  RollbackMismatch: 'ROLLBACK_MISMATCH',
  /** Something failed past the one-way door: stopped, nothing rolled back (KB-3A66 §5). */
  StoppedPastOneWay: 'STOPPED_PAST_ONE_WAY',
  /** Bad options or a malformed packet. */
  BadRequest: 'BAD_REQUEST',
} as const;
export type PacketFailure = (typeof PacketFailure)[keyof typeof PacketFailure];

const RETRYABLE: ReadonlySet<PacketFailure> = new Set([PacketFailure.Busy]);

export class PacketError extends Error {
  override name = 'PacketError';
  readonly code: PacketFailure;
  readonly retryable: boolean;
  readonly runId: string | undefined;
  readonly step: number | undefined;
  /** SQLSTATE of the database error behind it, when there is one. */
  readonly sqlstate: string | undefined;
  /** Structured detail for reports (drift diff, rollback proof, …). */
  readonly detail: unknown;

  constructor(code: PacketFailure, message: string, extra: { runId?: string; step?: number; sqlstate?: string; detail?: unknown; cause?: unknown } = {}) {
    super(message, { cause: extra.cause });
    this.code = code;
    this.retryable = RETRYABLE.has(code);
    this.runId = extra.runId;
    this.step = extra.step;
    this.sqlstate = extra.sqlstate;
    this.detail = extra.detail;
  }
}

/** SQLSTATE of a pg error (or undefined). */
export function sqlstateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
