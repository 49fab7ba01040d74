// The admission contract (DESIGN §4): what the client sends to `dotBirthAdmit`, what operators signal,
// what the workflow answers, and the failure types its activities raise. One module, free of I/O, so
// the workflow bundle, the activities and the client all validate against the same zod schemas.
//
// zod/mini, not classic zod (issue 8 §6): the SDK evaluates every module of the workflow bundle afresh
// for each workflow run, so what this module pulls in is paid on every admission — classic zod's own
// modules cost ~4 ms of evaluation per run on top of building the schemas, mini's a fraction of one
// (worker CPU per admission fell by 5–11 ms). Building the schemas below still costs a few ms per run:
// keep what the workflow needs here. The same core underneath, so the same checks, messages and JSON
// Schema; only the spelling differs (functions and .check() instead of chained methods).
// test/workflow-bundle.test.ts fails when classic zod comes back into the admission bundle.
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

// Classic zod configures English messages on first use; mini leaves them to the caller, and without a
// locale every built-in refusal reads "Invalid input". The same guard as classic's, so whichever loads
// first, an explicit z.config() elsewhere still wins.
if (!z.config().localeError) z.config(en());

// ───────────────────────────── identifiers ─────────────────────────────

/** A governed collection is a Postgres table name: lower-case identifier, so it never contains ':'. */
export const CollectionName = z
  .string()
  .check(z.regex(/^[a-z_][a-z0-9_]{0,62}$/, 'collection must be a lower-case table name (a-z, 0-9, _; at most 63)'));

// Control (Cc), format (Cf: zero-width and bidi tricks), surrogate (Cs) and private-use (Co)
// characters, and line/paragraph separators, make two codes look alike or break logs; refused.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/u;

/** Code points, not UTF-16 units: the same count as Postgres' char_length (the SQL's 200 limit, BG400). */
const codePoints = (s: string) => [...s].length;

/** `text` bounded in code points, printable, no surrounding whitespace. */
const printable = (label: string, max: number) =>
  z.string({ error: `${label} is required` }).check(
    z.refine((s) => codePoints(s) >= 1, `${label} must not be empty`),
    z.refine((s) => codePoints(s) <= max, `${label} must be at most ${max} characters`),
    z.refine((s) => !UNPRINTABLE.test(s), `${label} must not contain control or invisible characters`),
    z.refine((s) => s.trim() === s, `${label} must not start or end with whitespace`),
    // The same rules for the wire contract (contracts/wire.ts): JSON Schema counts code points too.
    z.meta({
      minLength: 1,
      maxLength: max,
      description: `${label}: 1–${max} characters, no control, format, surrogate, private-use or line/paragraph-separator characters, no leading or trailing whitespace`,
    }),
  );

/** The entity code. Any printable characters: the family's code rule is a stop-condition, not input validation. */
export const EntityCode = printable('code', 200);
export const Actor = printable('actor', 200);
export const Reason = printable('reason', 2000);
export const ApprovalId = printable('approval id', 200);

/** Extra column values for the governed row; `code` comes from the permit, never from here. */
export const RowFields = z
  .record(
    z.string().check(z.regex(/^[a-z_][a-z0-9_]{0,62}$/, 'field names are lower-case column names')),
    // z.number() refuses Infinity and NaN by itself (classic's .finite() was a no-op in zod 4).
    z.union([z.string().check(z.maxLength(4000)), z.number(), z.boolean(), z.null()]),
  )
  .check(
    z.refine((f) => !('code' in f), 'the code is not a field: it comes from the permit'),
    z.refine((f) => Object.keys(f).length <= 40, 'at most 40 fields'),
    z.refine((f) => JSON.stringify(f).length <= 16_384, 'fields must be at most 16 KB as JSON'),
  );

export const DEFAULT_COLLECTION = 'dot_tools';

/** Bigint ids travel as decimal strings (pg returns int8 as text; no float rounding). */
export const DbId = z.string().check(z.regex(/^[1-9][0-9]{0,18}$/, 'expected a positive integer id'));
export type DbId = z.infer<typeof DbId>;

// ───────────────────────────── workflow identity ─────────────────────────────

export const ADMISSION_WORKFLOW_PREFIX = 'dot-birth-admit';
export const ROLLBACK_WORKFLOW_PREFIX = 'dot-birth-rollback';

/**
 * The stable workflow id of the admission of `code` into `collection` (DESIGN §4: a second start
 * attaches instead of creating a second birth). Unambiguous for any printable code: the collection
 * cannot contain ':', so the first ':' after the prefix ends it and everything after is the code.
 */
export function admissionWorkflowId(collection: string, code: string): string {
  return `${ADMISSION_WORKFLOW_PREFIX}:${CollectionName.parse(collection)}:${EntityCode.parse(code)}`;
}

export function rollbackWorkflowId(collection: string, code: string): string {
  return `${ROLLBACK_WORKFLOW_PREFIX}:${CollectionName.parse(collection)}:${EntityCode.parse(code)}`;
}

/** Inverse of admissionWorkflowId; undefined for ids that are not admissions. */
export function parseAdmissionWorkflowId(id: string): { collection: string; code: string } | undefined {
  const m = /^dot-birth-admit:([a-z_][a-z0-9_]{0,62}):(.+)$/su.exec(id);
  return m ? { collection: m[1]!, code: m[2]! } : undefined;
}

// ───────────────────────────── stages and failures ─────────────────────────────

export const Stage = z.enum([
  'PREFLIGHT', // checking stop-conditions
  'BLOCKED', // a stop-condition holds: a stuck birth waiting for retry / cancel / breakGlass
  'PERMIT_ISSUED', // permit RESERVED for (code, collection)
  'INSERTING', // governed row being inserted under the permit
  'FINALIZING', // confirming the deferred finalize (permit FINALIZED, birth linked)
  'FINALIZED', // born: terminal success
  'COMPENSATING', // undoing what was written, in reverse
  'CANCELLED', // operator cancel / workflow cancellation, compensations done
  'ROLLED_BACK', // operator rollback, compensations done (after FINALIZED: birth retired)
  'COMPENSATION_FAILED', // a compensation failed: parked for an operator
  'FAILED', // a step failed for good, compensations done
]);
export type Stage = z.infer<typeof Stage>;

/**
 * ApplicationFailure types. SQLSTATEs of CONTRACT.md map onto the first six (all non-retryable);
 * DATABASE_UNAVAILABLE and DATABASE_ERROR are the only retryable ones.
 */
export const FailureType = {
  INVALID_INPUT: 'INVALID_INPUT', // BG400, or zod refusal
  GATE_REFUSED: 'GATE_REFUSED', // BG403
  PERMIT_CONFLICT: 'PERMIT_CONFLICT', // BG409
  ILLEGAL_TRANSITION: 'ILLEGAL_TRANSITION', // BG422
  BLOCKED_BY_DIM: 'BLOCKED_BY_DIM', // BG423
  PRECONDITION_FAILED: 'PRECONDITION_FAILED', // BG428
  FINALIZE_NOT_CONFIRMED: 'FINALIZE_NOT_CONFIRMED', // committed insert but permit not FINALIZED / birth not linked
  PERMIT_UNUSABLE: 'PERMIT_UNUSABLE', // permit came back terminal (EXPIRED, CANCELLED, FAILED) before the insert
  NOT_ADMITTED: 'NOT_ADMITTED', // rollback of an admission that never finalized
  CONSTRAINT_VIOLATION: 'CONSTRAINT_VIOLATION', // SQLSTATE class 23 (e.g. 23505, a duplicate dot_tools.code): never succeeds on a retry
  ALREADY_BORN: 'ALREADY_BORN', // preflight: the code is born in the collection with a live row; nothing to admit
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE', // retryable: connection lost, shutdown, deadlock, lock timeout
  DATABASE_ERROR: 'DATABASE_ERROR', // retryable within the policy's bounds: an unexpected SQLSTATE (grants, missing packet step)
  // workflow outcomes (the workflow fails with these so a re-admission of the code may start afresh)
  ADMISSION_CANCELLED: 'ADMISSION_CANCELLED',
  ADMISSION_ROLLED_BACK: 'ADMISSION_ROLLED_BACK',
  ADMISSION_FAILED: 'ADMISSION_FAILED',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

export const sqlStateFailureType: Readonly<Record<string, FailureType>> = {
  BG400: FailureType.INVALID_INPUT,
  BG403: FailureType.GATE_REFUSED,
  BG409: FailureType.PERMIT_CONFLICT,
  BG422: FailureType.ILLEGAL_TRANSITION,
  BG423: FailureType.BLOCKED_BY_DIM,
  BG428: FailureType.PRECONDITION_FAILED,
  '22001': FailureType.INVALID_INPUT, // string_data_right_truncation
  '22P02': FailureType.INVALID_INPUT, // invalid_text_representation
  '23502': FailureType.INVALID_INPUT, // not_null_violation
  '23514': FailureType.INVALID_INPUT, // check_violation
  '42703': FailureType.INVALID_INPUT, // undefined_column (unknown field)
  '23505': FailureType.CONSTRAINT_VIOLATION, // unique_violation (the code already has a row)
  '23503': FailureType.CONSTRAINT_VIOLATION, // foreign_key_violation
  '23P01': FailureType.CONSTRAINT_VIOLATION, // exclusion_violation
  // any other SQLSTATE of class 22 or 23: activities/failures.ts refuses it the same way (never retried)
};

/** Listed in every activity retry policy, so a retry never repeats a refusal the database made on purpose. */
export const retryableFailureTypes: readonly FailureType[] = [FailureType.DATABASE_UNAVAILABLE, FailureType.DATABASE_ERROR];
export const nonRetryableFailureTypes: FailureType[] = Object.values(FailureType).filter(
  (t) => !retryableFailureTypes.includes(t),
);

// ───────────────────────────── workflow input and result ─────────────────────────────

export const AdmissionInput = z.strictObject({
  collection: z._default(CollectionName, DEFAULT_COLLECTION),
  code: EntityCode,
  fields: z._default(RowFields, {}),
  requestedBy: z._default(Actor, 'birthgate'),
  /** Permit lifetime; the permit-expiry sweep moves a RESERVED permit past it to EXPIRED. */
  permitTtlSeconds: z._default(z.number().check(z.int(), z.minimum(30), z.maximum(86_400)), 900),
  /**
   * History budget of a parked admission: past this many events (or when the server suggests it) it
   * continues as new, carrying its state (issue 8: a stuck birth may wait for weeks). Tests lower it.
   */
  historyBudget: z._default(z.number().check(z.int(), z.minimum(100), z.maximum(40_000)), 10_000),
  /** Set by the admission itself when it continues as new: what the next run carries over. */
  carry: z.optional(z.lazy(() => AdmissionCarry)),
});
export type AdmissionInput = z.input<typeof AdmissionInput>;
export type AdmissionRequest = z.output<typeof AdmissionInput>;

// A check on a string, as classic's .datetime() was (not the z.iso.datetime() type): the same JSON Schema.
const IsoTime = z.string().check(z.iso.datetime({ offset: true }));

export const AdmissionResult = z.object({
  workflowId: z.string(),
  collection: CollectionName,
  code: EntityCode,
  stage: z.literal('FINALIZED'),
  permitId: DbId,
  rowId: DbId,
  birthId: DbId,
  breakGlass: z.boolean(),
  breakGlassId: z.nullable(DbId),
  startedAt: IsoTime,
  permitIssuedAt: IsoTime,
  finalizedAt: IsoTime,
});
export type AdmissionResult = z.infer<typeof AdmissionResult>;

// ───────────────────────────── operator messages ─────────────────────────────

export const RetrySignal = z.strictObject({ actor: Actor, reason: z.optional(Reason) });
export const CancelSignal = z.strictObject({ actor: Actor, reason: Reason });
export const RollbackSignal = z.strictObject({ actor: Actor, reason: Reason });
/**
 * SECURITY.md: the ledger entry is opened in the database by an operator (fn_break_glass_open, role
 * birthgate_operator) before this signal is sent; breakGlassId names it. A break-glass without it is
 * refused by the workflow (the Web UI's signal form cannot break glass on its own).
 */
export const BreakGlassSignal = z.strictObject({
  actor: Actor,
  reason: Reason,
  approvalId: ApprovalId,
  breakGlassId: z.optional(DbId),
  /** The park it answers (AdmissionState.parkEpoch when the operator looked): a decision for an earlier park is refused. */
  parkEpoch: z.optional(z.number().check(z.int(), z.minimum(1))),
});
export type RetrySignal = z.infer<typeof RetrySignal>;
export type CancelSignal = z.infer<typeof CancelSignal>;
export type RollbackSignal = z.infer<typeof RollbackSignal>;
export type BreakGlassSignal = z.infer<typeof BreakGlassSignal>;

/** The `attach` signal every admit sends with its start (signal-with-start): who asked. */
export const AttachSignal = z.strictObject({ requestedBy: Actor });
export type AttachSignal = z.infer<typeof AttachSignal>;

// ───────────────────────────── preflight ─────────────────────────────

// packet_incomplete: the database has no admission API yet (the apply packet has not run through its
// last step): nothing can be admitted, so the birth parks until an operator applies it and retries.
export const BlockerKind = z.enum(['family_flag_off', 'collection_unmanaged', 'code_rule', 'block_dim', 'kill_switch', 'packet_incomplete']);
export type BlockerKind = z.infer<typeof BlockerKind>;

/** What break-glass may override. A family without the flag has no gate to pass; a kill switch means stop. */
export const breakGlassOverridable: readonly BlockerKind[] = ['code_rule', 'block_dim'];

/** `hard`: no break-glass admits past it (kill switch, gate_drift and the data-level dims, a dim not computed). */
export const Blocker = z.object({ kind: BlockerKind, detail: z.string(), hard: z.optional(z.boolean()) });
export type Blocker = z.infer<typeof Blocker>;

/** A code already born in the collection, with its live row (fn_admission_preflight's already_born). */
export const AlreadyBorn = z.object({ birthId: DbId, rowId: DbId, status: z.string() });
export type AlreadyBorn = z.infer<typeof AlreadyBorn>;

export const PreflightReport = z.object({
  blockers: z.array(Blocker),
  familyFlag: z.boolean(),
  collectionManaged: z.boolean(),
  codePattern: z.nullable(z.string()),
  killSwitch: z.boolean(),
  /** Optional: workers from before issue 8 §4 do not send it. */
  alreadyBorn: z.optional(z.nullable(AlreadyBorn)),
});
export type PreflightReport = z.infer<typeof PreflightReport>;

/** Nothing stops the admission: no blocker, and the code is not already born (fn_admission_open's test too). */
export function admissionClear(report: PreflightReport): boolean {
  return report.blockers.length === 0 && !report.alreadyBorn;
}

// ───────────────────────────── ledger views ─────────────────────────────

export const PermitState = z.enum(['REQUESTED', 'RESERVED', 'CONSUMED', 'FINALIZED', 'FAILED', 'EXPIRED', 'CANCELLED']);
export type PermitState = z.infer<typeof PermitState>;

export const PermitView = z.object({
  permitId: DbId,
  state: PermitState,
  entityCode: z.string(),
  collection: z.string(),
  expiresAt: z.string(),
  breakGlass: z.boolean(),
  breakGlassId: z.nullable(DbId),
  rowId: z.nullable(DbId),
  birthId: z.nullable(DbId),
});
export type PermitView = z.infer<typeof PermitView>;

export const AdmissionLedger = z.object({
  permit: PermitView,
  rowId: z.nullable(DbId),
  birthId: z.nullable(DbId),
  birthStatus: z.nullable(z.string()),
});
export type AdmissionLedger = z.infer<typeof AdmissionLedger>;

export const InsertedRow = z.object({ rowId: DbId, breakGlassId: z.nullable(DbId) });
export type InsertedRow = z.infer<typeof InsertedRow>;

// ───────────────────────────── the queryable state ─────────────────────────────

export const StageTransition = z.object({ stage: Stage, at: IsoTime, note: z.string() });
export const Decision = z.object({
  kind: z.enum(['retry', 'cancel', 'breakGlass', 'rollback']),
  actor: z.string(),
  reason: z.nullable(z.string()),
  at: IsoTime,
  accepted: z.boolean(),
  note: z.string(),
});
export type Decision = z.infer<typeof Decision>;

export const AdmissionState = z.object({
  workflowId: z.string(),
  collection: CollectionName,
  code: z.string(),
  stage: Stage,
  /** What the admission waits for, in words (the same text as the UI's current details). */
  waitingFor: z.nullable(z.string()),
  blockers: z.array(Blocker),
  permit: z.nullable(PermitView),
  row: z.nullable(z.object({ rowId: DbId })),
  birth: z.nullable(z.object({ birthId: DbId, status: z.nullable(z.string()) })),
  breakGlass: z.nullable(z.extend(BreakGlassSignal, { breakGlassId: z.nullable(DbId), at: IsoTime })),
  transitions: z.array(StageTransition),
  decisions: z.array(Decision),
  /** Everyone whose admit started or attached to this admission (first 50). */
  requestedBy: z.array(z.string()),
  compensations: z.object({ done: z.array(z.string()), pending: z.array(z.string()) }),
  error: z.nullable(z.object({ type: z.string(), message: z.string() })),
  startedAt: IsoTime,
  result: z.nullable(AdmissionResult),
  /** How many times it has parked (BLOCKED); a break-glass names the park it answers. */
  parkEpoch: z._default(z.number().check(z.int(), z.minimum(0)), 0),
  /** An operator's decision was accepted and the admission is leaving its park (still showing its stage). */
  resuming: z._default(z.boolean(), false),
  /** The fields it was started with (a second admit with other fields is refused). */
  fields: z.optional(RowFields),
  /** Runs of this admission so far (continue-as-new while parked keeps each history bounded). */
  runs: z._default(z.number().check(z.int(), z.minimum(1)), 1),
});
export type AdmissionState = z.infer<typeof AdmissionState>;

/** What a parked admission carries into its next run (continue-as-new): bounded, and enough to go on. */
export const AdmissionCarry = z.object({
  /** Runs so far, this one included (1 in the first run). */
  runs: z.number().check(z.int(), z.minimum(1)),
  startedAt: IsoTime,
  permit: z.nullable(PermitView),
  blockers: z.array(Blocker),
  parkEpoch: z.number().check(z.int(), z.minimum(0)),
  /** The last decisions and stage moves (older ones are in the earlier runs' histories). */
  decisions: z.array(Decision).check(z.maxLength(50)),
  transitions: z.array(StageTransition).check(z.maxLength(50)),
  requestedBy: z.array(z.string()).check(z.maxLength(50)),
});
export type AdmissionCarry = z.infer<typeof AdmissionCarry>;

/** An operator decision's answer (the Workflow Updates): accepted or refused, and why. */
export const DecisionAck = z.object({ accepted: z.boolean(), stage: Stage, note: z.string() });
export type DecisionAck = z.infer<typeof DecisionAck>;

// ───────────────────────────── rollback after completion ─────────────────────────────

export const RollbackInput = z.strictObject({
  collection: z._default(CollectionName, DEFAULT_COLLECTION),
  code: EntityCode,
  /** The finalized admission's permit (from its result): the rollback proves it before retiring. */
  permitId: DbId,
  actor: Actor,
  reason: Reason,
});
export type RollbackInput = z.input<typeof RollbackInput>;

export const RollbackResult = z.object({
  workflowId: z.string(),
  admissionWorkflowId: z.string(),
  permitId: DbId,
  birthId: DbId,
  stage: z.literal('ROLLED_BACK'),
  retiredAt: IsoTime,
});
export type RollbackResult = z.infer<typeof RollbackResult>;

/** One-line, human-readable summary of a zod failure for ApplicationFailure messages and the CLI. */
export function describeIssues(error: z.core.$ZodError): string {
  return error.issues
    .map((i) => {
      // A refused record key carries the key schema's own message one level down.
      const nested = (i as { issues?: { message: string }[] }).issues?.map((n) => n.message).join(', ');
      const message = nested ? `${i.message}: ${nested}` : i.message;
      return i.path.length ? `${i.path.join('.')}: ${message}` : message;
    })
    .join('; ');
}
