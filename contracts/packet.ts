// The apply packet's workflow contract (issue 9 item 1, DESIGN §5): what the client sends to
// `applyPacket` and `packetRollback`, the owner's approval and the operator's decisions, the state
// they answer with, and their failure types. Free of I/O (the workflow bundle imports it), shared by
// workflows/, activities/packet.ts and client/packet.ts.
import { z } from 'zod';
import { PacketFailure } from '../packet/errors.ts';

export { PacketFailure };

// ───────────────────────────── identifiers ─────────────────────────────

const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/u;
const codePoints = (s: string) => [...s].length;

/** Bounded, printable, no surrounding whitespace: what the ledger (apply_run.owner, 1..200) and BG400 accept. */
const printable = (label: string, max: number) =>
  z
    .string({ error: `${label} is required` })
    .refine((s) => s.trim().length >= 1, `${label} must not be blank`)
    .refine((s) => codePoints(s) <= max, `${label} must be at most ${max} characters`)
    .refine((s) => !UNPRINTABLE.test(s), `${label} must not contain control or invisible characters`)
    .refine((s) => s.trim() === s, `${label} must not start or end with whitespace`);

export const Owner = printable('owner', 200);
export const ApprovalId = printable('approval id', 200);
export const Actor = printable('actor', 200);
export const Reason = printable('reason', 2000);
export const StepNo = z.number().int().min(0).max(99);
export const GovernedHash = z.string().regex(/^[0-9a-f]{64}$/, 'a governed hash is 64 hex digits (from a rehearsal report or `birthgate apply`)');

/**
 * Another packet tree (tests break a step in a copy of sql/apply). Its SQL runs as the estate's admin,
 * so the activity accepts it only inside the project or under NODE_ENV=test (activities/packet.ts);
 * here only its shape: an absolute path, printable.
 */
export const StepsRoot = z
  .string()
  .min(2)
  .max(4096)
  .refine((s) => s.startsWith('/'), 'stepsRoot must be an absolute path')
  .refine((s) => !UNPRINTABLE.test(s), 'stepsRoot must not contain control characters');

/**
 * The estate database a packet workflow belongs to: the cluster's system identifier (pg_control_system)
 * and the database name. Two clusters restored from one backup share a system identifier but not a
 * Temporal history; two databases of one cluster are two estates.
 */
export const Estate = z.strictObject({
  systemIdentifier: z.string().regex(/^[0-9]{1,20}$/, 'a PostgreSQL system identifier'),
  database: printable('database', 63),
});
export type Estate = z.infer<typeof Estate>;

export const PACKET_WORKFLOW_PREFIX = 'apply-packet';
export const PACKET_ROLLBACK_WORKFLOW_PREFIX = 'packet-rollback';
export const PACKET_TASK_QUEUE_PREFIX = 'birthgate-packet';

const estateKey = (e: Estate) => {
  const v = Estate.parse(e);
  // The system identifier has no ':', so the first ':' after it ends it and the rest is the name.
  return `${v.systemIdentifier}:${v.database}`;
};

/** One apply workflow per estate database: a second `birthgate apply` attaches (USE_EXISTING). */
export const packetWorkflowId = (e: Estate) => `${PACKET_WORKFLOW_PREFIX}:${estateKey(e)}`;
/** One rollback workflow per estate database at a time. */
export const packetRollbackWorkflowId = (e: Estate) => `${PACKET_ROLLBACK_WORKFLOW_PREFIX}:${estateKey(e)}`;
/**
 * The packet's task queue, one per estate database: only a worker holding that database's admin pool
 * polls it, so a workflow can never have its steps run against another database that shares the
 * Temporal server (tests, two estates, a staging clone).
 */
export const packetTaskQueue = (e: Estate) => `${PACKET_TASK_QUEUE_PREFIX}:${estateKey(e)}`;

// ───────────────────────────── inputs ─────────────────────────────

/** Function name → the md5 of its full definition an owner expects live (KB-2590 §4's, for production). */
const LiveMd5 = z.record(z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a function name'), z.string().regex(/^[0-9a-f]{32}$/, 'an md5 is 32 hex digits'));

export const ApplyPacketInput = z.strictObject({
  estate: Estate,
  /** The last step to apply; default: the packet's last. */
  through: StepNo.min(1).optional(),
  /** The governed hash a rehearsal reported: the entry state must be exactly what was rehearsed. */
  expectGovernedHash: GovernedHash.optional(),
  /** Steps 4 and 5 refuse a live birth function whose md5(pg_get_functiondef) is not this (packet/live-bodies.ts). */
  expectLiveMd5: LiveMd5.optional(),
  stepsRoot: StepsRoot.optional(),
  /** Create/refresh birthgate_worker after the last step (the password is the worker's config, never in history). */
  grantWorker: z.boolean().default(false),
  requestedBy: Actor,
});
export type ApplyPacketInput = z.input<typeof ApplyPacketInput>;

export const PacketRollbackInput = z.strictObject({
  estate: Estate,
  to: StepNo,
  stepsRoot: StepsRoot.optional(),
  requestedBy: Actor,
});
export type PacketRollbackInput = z.input<typeof PacketRollbackInput>;

// ───────────────────────────── updates ─────────────────────────────

/** KB-7D57 "Stop and get explicit owner sign-off between step 6 and step 7". */
export const PacketApproval = z.strictObject({
  owner: Owner,
  approvalId: ApprovalId,
  /** The governed hash the owner looked at (the packet shows it at the door): refused when the door's differs. */
  expectGovernedHash: GovernedHash.optional(),
});
export type PacketApproval = z.infer<typeof PacketApproval>;

/** An operator's answer to a park (a failure at or past the door), or a withdrawal at the door. */
export const PacketDecision = z.strictObject({
  action: z.enum(['retry', 'stop']),
  actor: Actor,
  reason: Reason.optional(),
});
export type PacketDecision = z.infer<typeof PacketDecision>;

export type PacketAck = { accepted: boolean; stage: PacketStage; note: string };

// ───────────────────────────── state ─────────────────────────────

export const PacketStage = z.enum([
  'STARTING', // lease, backup, entry drift check
  'APPLYING', // a step's up (or its skip)
  'WAITING_FOR_OWNER', // at the one-way door: the owner's approval (birthgate approve)
  'PARKED', // a step at or past the door failed: an operator retries or stops (never rolled back automatically)
  'ROLLING_BACK', // downs in reverse (a failure before the door, or packetRollback)
  'APPLIED',
  'ROLLED_BACK',
  'REFUSED', // nothing applied by this run: entry drift, a precondition, a refused rollback
  'FAILED',
  'STOPPED', // an operator stopped it (at the door or parked); what ran stays
]);
export type PacketStage = z.infer<typeof PacketStage>;

export const WAITING_STAGES: readonly PacketStage[] = ['WAITING_FOR_OWNER', 'PARKED'];
export const ENDED_STAGES: readonly PacketStage[] = ['APPLIED', 'ROLLED_BACK', 'REFUSED', 'FAILED', 'STOPPED'];

/** The `PacketStep` search attribute: `<STAGE>:<NN>`, NN the step it is at (00 before the first). */
export const packetStepAttribute = (stage: PacketStage, step: number | null) => `${stage}:${String(step ?? 0).padStart(2, '0')}`;

export type StepInfo = { step: number; title: string; oneWay: boolean; requiresApproval: boolean; selfUndoing: boolean; concurrently: boolean };

export type StepView = { step: number; title: string; action: 'up' | 'down' | 'skip'; attempts: number; ms: number; detail: string };

export type PacketErrorView = { code: PacketFailure; message: string; step: number | null; sqlstate: string | null; runId: string | null };

export type Decision = { kind: 'approve' | 'retry' | 'stop'; actor: string; accepted: boolean; note: string; at: string };

export type ProofView = { equal: boolean; entryHash: string; exitHash: string; diff: string[] };

export type PacketState = {
  workflowId: string;
  kind: 'apply' | 'rollback';
  estate: Estate;
  stage: PacketStage;
  /** The step running, waiting or failed; null before the first. */
  step: number | null;
  /** apply: the last step to apply; rollback: the step to roll back to. */
  target: number | null;
  /** The one-way door (KB-7D57 step 7). */
  door: number | null;
  waitingFor: string | null;
  ledgerRunId: string | null;
  entryHash: string | null;
  entryGovernedHash: string | null;
  /** The governed hash when the packet arrived at the door: what the owner approves. */
  doorGovernedHash: string | null;
  backupDir: string | null;
  /** Steps 1..k applied at entry (the drift check's prefix). */
  appliedAtEntry: number | null;
  steps: StepView[];
  rolledBack: StepView[];
  approval: { owner: string; approvalId: string; at: string } | null;
  decisions: Decision[];
  error: PacketErrorView | null;
  proof: ProofView | null;
  requestedBy: string;
  startedAt: string;
};

// ───────────────────────────── activity inputs (workflow → activities/packet.ts) ─────────────────────────────

/** The workflow run that holds the packet lease (packet/ledger.ts). */
export const LeaseHolder = z.strictObject({ workflowId: z.string().min(1).max(500), workflowRun: z.string().min(1).max(200) });
export type LeaseHolder = z.infer<typeof LeaseHolder>;
const LedgerRunId = z.string().regex(/^[1-9][0-9]{0,18}$/, 'a ledger run id');

const ActivityBase = z.strictObject({ estate: Estate, holder: LeaseHolder, stepsRoot: StepsRoot.optional() });

export const BeginRunInput = ActivityBase.extend({
  kind: z.enum(['apply', 'rollback']),
  /** apply: --through (default the last step); rollback: --to. */
  target: StepNo.nullable(),
  expectGovernedHash: GovernedHash.optional(),
});
export type BeginRunInput = z.input<typeof BeginRunInput>;

export const StepInput = ActivityBase.extend({
  ledgerRunId: LedgerRunId,
  step: StepNo.min(1),
  owner: Owner.optional(),
  approvalId: ApprovalId.optional(),
  rerunSelfUndoing: z.boolean().default(false),
  expectLiveMd5: LiveMd5.optional(),
});
export type StepInput = z.input<typeof StepInput>;

export const PlanRollbackInput = ActivityBase.extend({ ledgerRunId: LedgerRunId, to: StepNo });
export type PlanRollbackInput = z.input<typeof PlanRollbackInput>;

export const ProveInput = ActivityBase.extend({ ledgerRunId: LedgerRunId });
export type ProveInput = z.input<typeof ProveInput>;

export const EndRunInput = ActivityBase.extend({
  /** Null when the first activity failed before the workflow learnt it (the lease row names it then). */
  ledgerRunId: LedgerRunId.nullable(),
  status: z.enum(['applied', 'rolled_back', 'refused', 'failed', 'stopped']),
  errorCode: z.string().max(100).optional(),
  error: z.string().max(4000).optional(),
  /**
   * apply: create/refresh birthgate_worker (the password from the worker's configuration) — when this
   * run applied a step (`appliedSteps` > 0) or the role lacks its grants here; a run that applied
   * nothing leaves it as it is, so re-running a finished packet writes nothing.
   */
  grantWorker: z.boolean().default(false),
  appliedSteps: z.number().int().min(0).default(0),
  /** rollback --to 0: the worker's grants go with the packet. */
  dropWorker: z.boolean().default(false),
});
export type EndRunInput = z.input<typeof EndRunInput>;

export type BeginRunResult = {
  ledgerRunId: string;
  entryHash: string;
  entryGovernedHash: string;
  steps: StepInfo[];
  door: number | null;
  lastStep: number;
  /** Steps 1..k verify as applied at entry. */
  appliedThrough: number;
  /** apply only: the backup (KB-7D57 "run first"). */
  backup: { dir: string; files: number; pgDump: string } | null;
  /** apply only: why the run may not start (entry drift, a failed backup); null when it may. */
  refusal: PacketErrorView | null;
  /** A stale lease of a closed workflow run that was cleared first. */
  cleared: string | null;
};

export type StepRunResult = StepView & { governedHash: string };

// ───────────────────────────── results ─────────────────────────────

export type ApplyPacketResult = {
  workflowId: string;
  status: 'applied' | 'stopped';
  through: number;
  ledgerRunId: string;
  steps: StepView[];
  entryHash: string;
  exitHash: string;
  governedHash: string;
  backupDir: string | null;
  workerRole: boolean;
  /** For `stopped`: who stopped it and where. */
  note: string | null;
};

export type PacketRollbackResult = {
  workflowId: string;
  status: 'rolled_back';
  to: number;
  ledgerRunId: string;
  steps: StepView[];
  entryHash: string;
  exitHash: string;
};

/** What a failed packet workflow carries in its ApplicationFailure's details (type = the PacketFailure code). */
export type PacketFailureDetails = PacketErrorView & { proof?: ProofView | null; rolledBack?: StepView[] };

/** Every failure type but PACKET_BUSY is a decision the database or the packet made: never retried. */
export const nonRetryablePacketFailures: string[] = Object.values(PacketFailure).filter((c) => c !== PacketFailure.Busy);

export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}
