// The KB-7D57 post-apply test plan (DESIGN §6), one function per line, run inside the rehearsal's
// transaction after the packet. Each line runs under its own savepoint and is rolled back to it, so
// every line sees the freshly applied state and none sees another's rows. Finalize is a DEFERRABLE
// INITIALLY DEFERRED trigger: `SET CONSTRAINTS ALL IMMEDIATE` fires it without a commit (DESIGN §3).
import type pg from 'pg';
import { sqlstateOf, messageOf } from '../packet/errors.ts';

export type PlanBefore = {
  /** Triggers calling fn_birth_registry_auto, and its OID, before the packet (KB-7D57 "166 bindings"). */
  bindings: number;
  autoOid: string | null;
  /** fn_safety_block_dims() orphan_critical_active before the packet, and how many of those are the 5 pivots. */
  orphanCritical: number;
  pivotOrphans: number;
};

export type PlanContext = { before: PlanBefore; tag: string };
export type PlanResult = { ok: boolean; detail: string };
export type PlanLine = { id: string; line: string; run(c: pg.PoolClient, ctx: PlanContext): Promise<PlanResult> };

const PIVOTS = ['PIV-101', 'PIV-103', 'PIV-104', 'PIV-105', 'PIV-106'];

/** Read the "before" figures inside the rehearsal transaction, before step 1. */
export async function readPlanBefore(c: pg.PoolClient): Promise<PlanBefore> {
  const r = await c.query<{ bindings: number; auto_oid: string | null }>(
    `SELECT count(t.oid)::integer AS bindings, to_regproc('public.fn_birth_registry_auto')::oid::text AS auto_oid
       FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('public.fn_birth_registry_auto')`,
  );
  return { bindings: r.rows[0]!.bindings, autoOid: r.rows[0]!.auto_oid, orphanCritical: await orphanCritical(c), pivotOrphans: await pivotOrphans(c) };
}

async function orphanCritical(c: pg.PoolClient): Promise<number> {
  const r = await c.query<{ n: string }>(`SELECT block_count AS n FROM fn_safety_block_dims() WHERE dim = 'orphan_critical_active'`);
  return Number(r.rows[0]?.n ?? 0);
}

async function pivotOrphans(c: pg.PoolClient): Promise<number> {
  const r = await c.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM v_birth_orphan
      WHERE orphan_class = 'CRITICAL_ACTIVE' AND NOT accepted_exception AND collection_name = 'pivot_definitions'
        AND entity_code = ANY ($1::text[])`,
    [PIVOTS],
  );
  return r.rows[0]!.n;
}

/** Run a statement that must fail; its error is caught by a savepoint so the transaction goes on. */
async function refused(c: pg.PoolClient, sql: string, params: unknown[]): Promise<{ sqlstate?: string; message: string } | undefined> {
  await c.query('SAVEPOINT plan_expect');
  try {
    await c.query(sql, params);
    await c.query('RELEASE SAVEPOINT plan_expect');
    return undefined;
  } catch (err) {
    await c.query('ROLLBACK TO SAVEPOINT plan_expect');
    return { sqlstate: sqlstateOf(err), message: messageOf(err) };
  }
}

async function issue(c: pg.PoolClient, code: string, ttl = 600): Promise<string> {
  const key = `rehearsal:dot_tools:${code}`;
  const r = await c.query<{ permit_id: string }>(
    `SELECT permit_id FROM fn_permit_issue($1, $2, 'dot_tools', $3, 'birthgate-rehearsal', $1, NULL)`, [key, code, ttl]);
  return r.rows[0]!.permit_id;
}

async function admit(c: pg.PoolClient, permitId: string, name: string): Promise<string> {
  const r = await c.query<{ row_id: string }>(
    `SELECT row_id FROM fn_admission_insert_dot_tools($1, jsonb_build_object('name', $2::text, '_dot_origin', 'birthgate-rehearsal'))`,
    [permitId, name]);
  // Fire the deferred finalize now; the rehearsal never commits (DESIGN §3).
  await c.query('SET CONSTRAINTS ALL IMMEDIATE');
  return r.rows[0]!.row_id;
}

async function births(c: pg.PoolClient, code: string): Promise<Record<string, number>> {
  const r = await c.query<{ collection_name: string; n: number }>(
    'SELECT collection_name, count(*)::integer AS n FROM birth_registry WHERE entity_code = $1 GROUP BY 1', [code]);
  return Object.fromEntries(r.rows.map((x) => [x.collection_name, x.n]));
}

export const PLAN: PlanLine[] = [
  {
    id: 'composite-present',
    line: 'composite constraint present, single-column unique absent',
    async run(c) {
      const r = await c.query<{ composite: string | null; single: string | null }>(
        `SELECT (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.birth_registry'::regclass
                   AND conname = 'birth_registry_code_collection_uq') AS composite,
                (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.birth_registry'::regclass
                   AND conname = 'birth_registry_entity_code_unique') AS single`);
      const { composite, single } = r.rows[0]!;
      return { ok: composite === 'UNIQUE (entity_code, collection_name)' && single === null, detail: `birth_registry_code_collection_uq=${composite ?? 'absent'}; birth_registry_entity_code_unique=${single ?? 'absent'}` };
    },
  },
  {
    id: 'new-code-born-once',
    line: 'new-code dot_tools insert (with permit) → born once',
    async run(c, { tag }) {
      const code = `dot-rehearsal-${tag}-new`;
      await admit(c, await issue(c, code), 'rehearsal new code');
      const b = await births(c, code);
      return { ok: b.dot_tools === 1 && Object.keys(b).length === 1, detail: `births of ${code}: ${JSON.stringify(b)}` };
    },
  },
  {
    id: 'cross-collection-born',
    line: 'cross-collection code → now born in its own collection',
    async run(c) {
      // A code already born in dot_tools, inserted into pivot_definitions (no family flag): the
      // entry conflict target would swallow it (KB-2590 §4); now it must be born there too.
      const pick = await c.query<{ code: string }>(
        `SELECT d.code FROM dot_tools d
          WHERE EXISTS (SELECT 1 FROM birth_registry b WHERE b.entity_code = d.code AND b.collection_name = 'dot_tools')
            AND NOT EXISTS (SELECT 1 FROM pivot_definitions p WHERE p.code = d.code)
          ORDER BY d.id LIMIT 1`);
      const code = pick.rows[0]?.code;
      if (!code) return { ok: false, detail: 'no born dot_tools code to reuse' };
      await c.query(`INSERT INTO pivot_definitions (code, name) VALUES ($1, 'rehearsal cross-collection')`, [code]);
      const b = await births(c, code);
      const pivots = await c.query<{ n: number }>(
        `SELECT count(*)::integer AS n FROM birth_registry WHERE collection_name = 'pivot_definitions' AND entity_code = ANY ($1::text[])`, [PIVOTS]);
      const present = await c.query<{ n: number }>(`SELECT count(*)::integer AS n FROM pivot_definitions WHERE code = ANY ($1::text[])`, [PIVOTS]);
      const ok = b.dot_tools === 1 && b.pivot_definitions === 1 && pivots.rows[0]!.n === present.rows[0]!.n;
      return { ok, detail: `births of ${code}: ${JSON.stringify(b)}; pivots born in pivot_definitions ${pivots.rows[0]!.n}/${present.rows[0]!.n}` };
    },
  },
  {
    id: 'no-permit-blocked',
    line: 'no-permit / expired-permit dot_tools insert → blocked',
    async run(c, { tag }) {
      const bare = `dot-rehearsal-${tag}-bare`;
      const noPermit = await refused(c, `INSERT INTO dot_tools (code, name, _dot_origin) VALUES ($1, 'no permit', 'birthgate-rehearsal')`, [bare]);
      const late = `dot-rehearsal-${tag}-late`;
      const permit = await issue(c, late);
      // The TTL elapsing, simulated: the rehearsal cannot wait for a clock inside its transaction.
      await c.query(`UPDATE birth_admission_permit SET expires_at = clock_timestamp() - interval '1 second' WHERE permit_id = $1`, [permit]);
      const expired = await refused(c, `SELECT * FROM fn_admission_insert_dot_tools($1, '{"name": "expired permit"}'::jsonb)`, [permit]);
      const rows = await c.query<{ n: number }>('SELECT count(*)::integer AS n FROM dot_tools WHERE code = ANY ($1::text[])', [[bare, late]]);
      const ok = noPermit?.sqlstate === 'BG403' && expired?.sqlstate === 'BG403' && /expired/.test(expired.message) && rows.rows[0]!.n === 0;
      return { ok, detail: `no permit: ${noPermit ? `${noPermit.sqlstate} ${noPermit.message}` : 'ADMITTED'}; expired: ${expired ? `${expired.sqlstate} ${expired.message}` : 'ADMITTED'}; rows written ${rows.rows[0]!.n}` };
    },
  },
  {
    id: 'valid-permit-finalized',
    line: 'valid permit → row + permit FINALIZED + birth linked',
    async run(c, { tag }) {
      const code = `dot-rehearsal-${tag}-final`;
      const permit = await issue(c, code);
      const rowId = await admit(c, permit, 'rehearsal finalize');
      const r = await c.query<{ state: string; row_id: string | null; birth_id: string | null; birth: string | null; linked: string | null }>(
        `SELECT p.state, p.row_id, p.birth_id, b.id AS birth, b.jsonb_profile -> 'admission' ->> 'permit_id' AS linked
           FROM birth_admission_permit p
           LEFT JOIN birth_registry b ON b.entity_code = p.entity_code AND b.collection_name = 'dot_tools'
          WHERE p.permit_id = $1`, [permit]);
      const p = r.rows[0]!;
      const ok = p.state === 'FINALIZED' && p.row_id === rowId && p.birth_id !== null && p.birth_id === p.birth && p.linked === permit;
      return { ok, detail: `permit ${permit} ${p.state}, row ${p.row_id}/${rowId}, birth ${p.birth_id}/${p.birth}, profile.admission.permit_id=${p.linked}` };
    },
  },
  {
    id: 'bindings-intact',
    line: '166 trigger bindings intact',
    async run(c, { before }) {
      const r = await c.query<{ n: number; oid: string | null; disabled: number }>(
        `SELECT count(t.oid)::integer AS n, to_regproc('public.fn_birth_registry_auto')::oid::text AS oid,
                count(t.oid) FILTER (WHERE t.tgenabled = 'D')::integer AS disabled
           FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('public.fn_birth_registry_auto')`);
      const x = r.rows[0]!;
      return { ok: x.n === before.bindings && x.oid === before.autoOid && x.disabled === 0, detail: `${x.n} bindings (entry ${before.bindings}), fn_birth_registry_auto oid ${x.oid} (entry ${before.autoOid}), ${x.disabled} disabled` };
    },
  },
  {
    id: 'other-families-unaffected',
    line: 'other families unaffected (no permit required where flag unset)',
    async run(c, { tag }) {
      const code = `CR-9${tag.replace(/\D/g, '').slice(0, 8) || '0'}`;
      const permits = async () => (await c.query<{ n: number }>('SELECT count(*)::integer AS n FROM birth_admission_permit')).rows[0]!.n;
      const before = await permits();
      const err = await refused(c, `INSERT INTO collection_registry (code, collection, name, _dot_origin) VALUES ($1, $2, 'rehearsal', 'birthgate-rehearsal')`, [code, `rehearsal_${tag}`]);
      const b = await births(c, code);
      const flag = await c.query<{ f: boolean }>(`SELECT fn_family_flag('collection_registry', 'birth_admission_required') AS f`);
      const ok = !err && b.collection_registry === 1 && (await permits()) === before && flag.rows[0]!.f === false;
      return { ok, detail: err ? `collection_registry insert refused: ${err.sqlstate} ${err.message}` : `collection_registry ${code} born ${JSON.stringify(b)} without a permit; family flag ${flag.rows[0]!.f}` };
    },
  },
  {
    id: 'block-dims-drop',
    line: 'RP guard still returns BLOCK dims (orphan 59 → 54 after the pivot births)',
    async run(c, { before }) {
      const after = await orphanCritical(c);
      const guard = await refused(c, `SELECT * FROM fn_assert_safe_for_dot_action('rp_cleanup')`, []);
      // An estate already past step 8 (its pivots born at entry) has nothing to drop: the dim must not move.
      const ok = after === before.orphanCritical - before.pivotOrphans && guard?.sqlstate === 'BG423';
      const born = before.pivotOrphans > 0 ? `${before.pivotOrphans} pivot orphans born` : 'the pivots were born at entry (step 8 applied)';
      return { ok, detail: `orphan_critical_active ${before.orphanCritical} → ${after} (${born}); rp_cleanup guard: ${guard ? `${guard.sqlstate} ${guard.message}` : 'PASSED (expected a refusal)'}` };
    },
  },
];
