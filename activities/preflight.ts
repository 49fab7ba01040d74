// Stop-conditions before a permit is issued (DESIGN §4 step 1): family flag, the family's code rule,
// collection managed, the BLOCK dims fn_assert_safe_for_dot_action('birth_admit') refuses on
// (gate_drift included), kill switch. The database decides; this only reads its answer.
import { z } from 'zod';
import type { Pool } from '../db/pool.ts';
import { Blocker, CollectionName, EntityCode, PreflightReport } from '../contracts/admission.ts';
import { dbStep, parseInput } from './failures.ts';
import type { ActivityHooks } from './hooks.ts';

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
};

export function preflightActivities(pool: Pool, hooks: ActivityHooks) {
  return {
    async preflight(raw: PreflightInput): Promise<PreflightReport> {
      const i = parseInput(PreflightInput, raw, 'preflight');
      const report = await dbStep('fn_admission_preflight', async () => {
        const { rows } = await pool.query<{ p: PreflightJson }>('SELECT fn_admission_preflight($1, $2) AS p', [i.code, i.collection]);
        const p = rows[0]!.p;
        return PreflightReport.parse({
          blockers: z.array(Blocker).parse(p.blockers ?? []),
          familyFlag: p.family_flag === true,
          collectionManaged: p.collection_managed === true,
          codePattern: p.code_pattern ?? null,
          killSwitch: p.kill_switch === true,
        });
      });
      hooks.at('preflight');
      return report;
    },
  };
}
