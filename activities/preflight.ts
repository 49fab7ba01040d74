// Stop-conditions before a permit is issued (DESIGN §4 step 1): family flag, the family's code rule,
// collection managed, the BLOCK dims fn_assert_safe_for_dot_action('birth_admit') refuses on
// (gate_drift included), kill switch. The database decides; this only reads its answer.
import { z } from 'zod';
import type { Pool } from '../db/pool.ts';
import { Blocker, CollectionName, EntityCode, PreflightReport } from '../contracts/admission.ts';
import { dbStep, parseInput } from './failures.ts';
import type { ActivityHooks } from './hooks.ts';
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
};

export function preflightActivities(pool: Pool, hooks: ActivityHooks) {
  return {
    async preflight(raw: PreflightInput): Promise<PreflightReport> {
      const startedAt = Date.now();
      const i = parseInput(PreflightInput, raw, 'preflight');
      const report = await dbStep('fn_admission_preflight', async () => {
        // Under the statement guard: the drift tick inside may wait on locks; a cancelled preflight
        // cancels its backend (statement-guard.ts).
        let p: PreflightJson;
        try {
          const { rows } = await guardedSql(pool, 'fn_admission_preflight', { startedAt }, (c) =>
            c.query<{ p: PreflightJson }>('SELECT fn_admission_preflight($1, $2) AS p', [i.code, i.collection]));
          p = rows[0]!.p;
        } catch (err) {
          // No admission API in this database (42883 undefined function, 42P01 undefined table): not a
          // passing outage to retry for minutes, but a stop-condition an operator resolves (apply, retry).
          const code = (err as { code?: string }).code;
          if (code !== '42883' && code !== '42P01') throw err;
          return PreflightReport.parse({
            blockers: [{ kind: 'packet_incomplete', hard: true,
              detail: `the admission API is missing here (${(err as Error).message}): apply the packet through its last step (\`birthgate apply\`), then retry` }],
            familyFlag: false, collectionManaged: false, codePattern: null, killSwitch: false, alreadyBorn: null,
          });
        }
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
      });
      hooks.at('preflight');
      return report;
    },
  };
}
