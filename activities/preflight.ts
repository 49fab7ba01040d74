// Stop-conditions before a permit is issued (DESIGN §4 step 1): family flag, the family's code rule,
// collection managed, the BLOCK dims fn_assert_safe_for_dot_action('birth_admit') refuses on
// (gate_drift included), kill switch. The database decides; this only reads its answer.
//
// openAdmission (issue 8 §6) is the admission's first step in one SQL call: the same stop-conditions,
// and the RESERVED permit when they are clear (fn_admission_open, one transaction). Where the database
// predates fn_admission_open it falls back to the two calls it replaces, with the same answer.
import { z } from 'zod';
import type { Pool } from '../db/pool.ts';
import { admissionClear, Blocker, CollectionName, EntityCode, PermitView, PreflightReport } from '../contracts/admission.ts';
import { dbStep, parseInput } from './failures.ts';
import type { ActivityHooks } from './hooks.ts';
import { IssuePermitInput, openPermit, permitView } from './permits.ts';
import { guardedSql } from './statement-guard.ts';

export const PreflightInput = z.strictObject({ collection: CollectionName, code: EntityCode });
export type PreflightInput = z.infer<typeof PreflightInput>;

type PreflightJson = {
  family_flag?: boolean;
  collection_managed?: boolean;
  code_pattern?: string | null;
  code_rule_ok?: boolean;
  kill_switch?: boolean;
  block_dims?: { dim: string; count?: number; detail?: string }[];
  blockers?: { kind: string; detail: string }[];
  /** The live birth of this code (issue 8 §4), null when none. */
  already_born?: { birth_id: number | string; row_id: number | string; status: string } | null;
  /** fn_admission_open only: the permit it reserved, or the one the key already held; null when none. */
  permit?: Record<string, unknown> | null;
};

/** What openAdmission answers: the stop-conditions, and the permit when there is one. */
export type OpenedAdmission = { report: PreflightReport; permit: PermitView | null };

/** Undefined function or table: the admission API (or this part of it) is not in this database. */
const missingApi = (err: unknown) => ['42883', '42P01'].includes((err as { code?: string }).code ?? '');

function reportOf(p: PreflightJson): PreflightReport {
  return PreflightReport.parse({
    blockers: z.array(Blocker).parse(p.blockers ?? []),
    familyFlag: p.family_flag === true,
    collectionManaged: p.collection_managed === true,
    codePattern: p.code_pattern ?? null,
    killSwitch: p.kill_switch === true,
    alreadyBorn: p.already_born
      ? { birthId: String(p.already_born.birth_id), rowId: String(p.already_born.row_id), status: p.already_born.status }
      : null,
  });
}

export function preflightActivities(pool: Pool, hooks: ActivityHooks) {
  /** fn_admission_preflight, under the statement guard (the drift tick inside may wait on locks). */
  async function readStopConditions(i: PreflightInput, startedAt: number): Promise<PreflightReport> {
    return dbStep('fn_admission_preflight', async () => {
      let p: PreflightJson;
      try {
        const { rows } = await guardedSql(pool, 'fn_admission_preflight', { startedAt }, (c) =>
          c.query<{ p: PreflightJson }>({ name: 'birthgate.preflight', text: 'SELECT fn_admission_preflight($1, $2) AS p', values: [i.code, i.collection] }));
        p = rows[0]!.p;
      } catch (err) {
        // No admission API in this database (42883 undefined function, 42P01 undefined table): not a
        // passing outage to retry for minutes, but a stop-condition an operator resolves (apply, retry).
        if (!missingApi(err)) throw err;
        return PreflightReport.parse({
          blockers: [{ kind: 'packet_incomplete', hard: true,
            detail: `the admission API is missing here (${(err as Error).message}): apply the packet through its last step (\`birthgate apply\`), then retry` }],
          familyFlag: false, collectionManaged: false, codePattern: null, killSwitch: false, alreadyBorn: null,
        });
      }
      return reportOf(p);
    });
  }

  return {
    async preflight(raw: PreflightInput): Promise<PreflightReport> {
      const startedAt = Date.now();
      const i = parseInput(PreflightInput, raw, 'preflight');
      const report = await readStopConditions(i, startedAt);
      hooks.at('preflight');
      return report;
    },

    /**
     * The stop-conditions and, when nothing stops the admission, its RESERVED permit: one SQL call, one
     * transaction (fn_admission_open). When something stops it, the permit is the one the key already
     * holds (a re-run after a lost answer), else null. Idempotent on the key, as issuePermit.
     */
    async openAdmission(raw: IssuePermitInput): Promise<OpenedAdmission> {
      const startedAt = Date.now();
      const i = parseInput(IssuePermitInput, raw, 'openAdmission');
      const opened = await dbStep('fn_admission_open', async (): Promise<OpenedAdmission | undefined> => {
        try {
          const { rows } = await guardedSql(pool, 'fn_admission_open', { startedAt }, (c) =>
            c.query<{ o: PreflightJson }>({
              name: 'birthgate.open',
              text: 'SELECT fn_admission_open($1, $2, $3, $4, $5, $6, $7) AS o',
              values: [i.code, i.collection, i.idempotencyKey, i.ttlSeconds, i.actor, i.workflowId, i.runId],
            }));
          const o = rows[0]!.o;
          return { report: reportOf(o), permit: o.permit ? permitView(o.permit) : null };
        } catch (err) {
          if (missingApi(err)) return undefined; // a database from before fn_admission_open: the two calls below
          throw err;
        }
      });
      if (opened) {
        hooks.at(opened.permit ? 'after-permit-issue' : 'preflight');
        return opened;
      }
      const report = await readStopConditions(i, startedAt);
      if (!admissionClear(report)) {
        hooks.at('preflight');
        return { report, permit: null };
      }
      const permit = await openPermit(pool, 'fn_permit_issue', i);
      hooks.at('after-permit-issue');
      return { report, permit };
    },
  };
}
