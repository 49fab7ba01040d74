// The apply packet as files: sql/apply/NN-slug/{up,down,verify}.sql + meta.json (CONTRACT.md
// "Layout"). Discovery only — reading and validating, no database. A step is sqitch's triple
// (deploy/revert/verify) plus the hazards pgroll would mark: CONCURRENTLY, one-way, approval.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { sqlRoot } from '../db/sql-files.ts';

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
};

export const defaultStepsRoot = path.join(sqlRoot, 'apply');

const STEP_DIR = /^(\d{2})-([a-z0-9][a-z0-9-]*)$/;

function readRequired(dir: string, file: string): string {
  const p = path.join(dir, file);
  if (!fs.existsSync(p)) throw new Error(`apply packet: ${path.relative(sqlRoot, p)} is missing`);
  return fs.readFileSync(p, 'utf8');
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
    const rehearsePath = path.join(dir, 'rehearse.sql');
    return {
      step: meta.step,
      slug: m[2]!,
      dir,
      meta,
      up: readRequired(dir, 'up.sql'),
      down: readRequired(dir, 'down.sql'),
      verify: readRequired(dir, 'verify.sql'),
      rehearse: fs.existsSync(rehearsePath) ? fs.readFileSync(rehearsePath, 'utf8') : undefined,
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
