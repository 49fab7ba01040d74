// The apply packet as files: sql/apply/NN-slug/{up,down,verify}.sql + meta.json (CONTRACT.md
// "Layout"), plus two optional files of a down: down-precheck.sql (its preconditions, read-only) and
// the file meta.downConcurrently names (its CONCURRENTLY part). Discovery only — reading and
// validating, no database. A step is sqitch's triple (deploy/revert/verify) plus the hazards pgroll
// would mark: CONCURRENTLY, one-way, approval.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { sqlRoot } from '../db/sql-files.ts';

/** A plain file name beside up.sql (no directory part, so a meta.json cannot point outside its folder). */
const SIBLING_SQL = /^[a-z0-9][a-z0-9-]*\.sql$/;
/** Files with a fixed role; meta.downConcurrently must name another one. */
const RESERVED_FILES = new Set(['up.sql', 'down.sql', 'verify.sql', 'down-precheck.sql', 'rehearse.sql']);

export const StepMetaSchema = z.object({
  step: z.number().int().min(1).max(99),
  title: z.string().min(1),
  /** KB-7D57 step 2: the up.sql is one CREATE INDEX CONCURRENTLY, sent outside a transaction. */
  concurrently: z.boolean(),
  /** KB-3A66 §5: reversible only until used (step 7); no automatic rollback past it. */
  oneWay: z.boolean(),
  /** KB-7D57: "explicit owner sign-off between step 6 and step 7". */
  requiresApproval: z.boolean(),
  /** Leaves no state (step 6 smoke test): its verify proves preconditions, so it is re-run, never skipped. */
  selfUndoing: z.boolean().optional().default(false),
  /**
   * KB-7D57 step 7's down: a file of this step folder holding one CREATE [UNIQUE] INDEX CONCURRENTLY,
   * sent alone outside a transaction before the transactional down.sql (which promotes the index
   * with a brief lock instead of building it under ACCESS EXCLUSIVE). CONTRACT.md "Runner obligations".
   */
  downConcurrently: z.string().regex(SIBLING_SQL, 'a .sql file name of the step folder').optional(),
  kb: z.string().min(1),
});
export type StepMeta = z.infer<typeof StepMetaSchema>;

export type PacketStep = {
  step: number;
  slug: string;
  dir: string;
  meta: StepMeta;
  up: string;
  down: string;
  verify: string;
  /** For a CONCURRENTLY step: the non-concurrent variant the rehearsal runs inside its transaction. */
  rehearse: string | undefined;
  /**
   * down-precheck.sql: one row (ok, detail), read-only. Every down of a rollback has its precheck run
   * before the first down runs (issue 7 item 7: refuse a rollback whole, never half way).
   */
  downPrecheck: string | undefined;
  /** The CONCURRENTLY part of the down (meta.downConcurrently), run before down.sql outside a transaction. */
  downConcurrently: string | undefined;
};

export const defaultStepsRoot = path.join(sqlRoot, 'apply');

const STEP_DIR = /^(\d{2})-([a-z0-9][a-z0-9-]*)$/;

function readRequired(dir: string, file: string): string {
  const p = path.join(dir, file);
  if (!fs.existsSync(p)) throw new Error(`apply packet: ${path.relative(sqlRoot, p)} is missing`);
  return fs.readFileSync(p, 'utf8');
}

function readOptional(dir: string, file: string): string | undefined {
  const p = path.join(dir, file);
  return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : undefined;
}

/** The down's CONCURRENTLY file: named by meta.json, so once named it must exist. */
function readDownConcurrently(dir: string, meta: StepMeta): string | undefined {
  if (meta.downConcurrently === undefined) return undefined;
  if (RESERVED_FILES.has(meta.downConcurrently)) {
    throw new Error(`apply packet: step ${meta.step} downConcurrently must name its own file, not ${meta.downConcurrently}`);
  }
  if (meta.concurrently) throw new Error(`apply packet: step ${meta.step} is "concurrently" already; downConcurrently is for a transactional down`);
  return readRequired(dir, meta.downConcurrently);
}

/** Every step under `root` in step order; throws on a malformed packet (a runner must not guess). */
export function discoverSteps(root: string = defaultStepsRoot): PacketStep[] {
  const dirs = fs
    .readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && STEP_DIR.test(d.name))
    .map((d) => d.name)
    .sort();
  const steps = dirs.map((name): PacketStep => {
    const m = STEP_DIR.exec(name)!;
    const dir = path.join(root, name);
    const parsed = StepMetaSchema.safeParse(JSON.parse(readRequired(dir, 'meta.json')));
    if (!parsed.success) {
      throw new Error(`apply packet: ${name}/meta.json is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    const meta = parsed.data;
    if (meta.step !== Number(m[1])) throw new Error(`apply packet: ${name}/meta.json says step ${meta.step}`);
    return {
      step: meta.step,
      slug: m[2]!,
      dir,
      meta,
      up: readRequired(dir, 'up.sql'),
      down: readRequired(dir, 'down.sql'),
      verify: readRequired(dir, 'verify.sql'),
      rehearse: readOptional(dir, 'rehearse.sql'),
      downPrecheck: readOptional(dir, 'down-precheck.sql'),
      downConcurrently: readDownConcurrently(dir, meta),
    };
  });
  const seen = new Set<number>();
  for (const s of steps) {
    if (seen.has(s.step)) throw new Error(`apply packet: step ${s.step} appears twice`);
    seen.add(s.step);
    if (s.meta.concurrently && s.meta.requiresApproval) throw new Error(`apply packet: step ${s.step} cannot be both CONCURRENTLY and approval-gated`);
  }
  return steps;
}

export function findStep(steps: PacketStep[], step: number): PacketStep {
  const s = steps.find((x) => x.step === step);
  if (!s) throw new Error(`apply packet has no step ${step} (steps: ${steps.map((x) => x.step).join(', ')})`);
  return s;
}

/** The first one-way step (KB-7D57 step 7): automatic rollback stops at its door. */
export function oneWayDoor(steps: PacketStep[]): number | undefined {
  return steps.find((s) => s.meta.oneWay)?.step;
}
