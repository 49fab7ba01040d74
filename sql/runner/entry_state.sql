-- The expected entry state of the apply packet (KB-2590 §2–§8), as named checks. scope 'always'
-- must hold whatever the packet has applied; scope 'unapplied' must hold when no step is applied
-- yet (the runner checks it only then). Catalog reads only: cheap on the 1.12M-row estate.
WITH br AS (SELECT to_regclass('public.birth_registry') AS oid),
     dt AS (SELECT to_regclass('public.dot_tools') AS oid)
SELECT 'birth_registry present' AS check, 'always' AS scope,
       (SELECT oid IS NOT NULL FROM br) AS ok,
       'KB-2590 §2' AS detail
UNION ALL
-- KB-2590 §3: "0 null collection_name rows": the identity columns are NOT NULL, so composite is total.
SELECT 'identity columns NOT NULL', 'always',
       coalesce((SELECT bool_and(a.attnotnull) AND count(*) = 2 FROM pg_attribute a, br
                  WHERE a.attrelid = br.oid AND a.attname IN ('entity_code', 'collection_name') AND NOT a.attisdropped), false),
       'entity_code, collection_name NOT NULL (KB-2590 §3)'
UNION ALL
-- KB-2590 §3: "FK references to birth_registry(entity_code) or (id): 0 — nothing breaks if single-col unique is dropped".
SELECT 'no foreign keys reference birth_registry', 'always',
       NOT EXISTS (SELECT 1 FROM pg_constraint k, br WHERE k.contype = 'f' AND k.confrelid = br.oid),
       coalesce((SELECT string_agg(format('%s.%s', k.conrelid::regclass, k.conname), ', ')
                   FROM pg_constraint k, br WHERE k.contype = 'f' AND k.confrelid = br.oid), 'none (KB-2590 §3)')
UNION ALL
-- KB-7D57 "166 trigger bindings intact": the AFTER birth is bound and none of its bindings is disabled.
SELECT 'birth bindings present and enabled', 'always',
       EXISTS (SELECT 1 FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('public.fn_birth_registry_auto'))
       AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgenabled = 'D'
                         AND t.tgfoid IN (to_regproc('public.fn_birth_registry_auto'), to_regproc('public.fn_birth_registry_auto_id'))),
       format('%s bindings, %s disabled',
              (SELECT count(*) FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgfoid = to_regproc('public.fn_birth_registry_auto')),
              (SELECT count(*) FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgenabled = 'D'
                 AND t.tgfoid IN (to_regproc('public.fn_birth_registry_auto'), to_regproc('public.fn_birth_registry_auto_id'))))
UNION ALL
-- KB-2590 §8: "app.bypass_birth_gate / app.birth_gate_mode — unset". A database or role default
-- that sets the kill switch would silently defeat the gate this packet installs.
SELECT 'birth-gate kill switch unset', 'always',
       coalesce(current_setting('app.bypass_birth_gate', true), '') IN ('', 'off', 'false', '0'),
       format('app.bypass_birth_gate=%s', coalesce(nullif(current_setting('app.bypass_birth_gate', true), ''), 'unset'))
UNION ALL
SELECT 'dot_tools present with code generation', 'always',
       EXISTS (SELECT 1 FROM pg_trigger t, dt WHERE t.tgrelid = dt.oid AND t.tgname = 'trg_auto_code_dot_tools'),
       'trg_auto_code_dot_tools (KB-2590 §5)'
UNION ALL
-- From here: the state before step 1 (KB-2590 as found).
SELECT 'single-column unique present', 'unapplied',
       EXISTS (SELECT 1 FROM pg_constraint k, br WHERE k.conrelid = br.oid AND k.conname = 'birth_registry_entity_code_unique'
                 AND pg_get_constraintdef(k.oid) = 'UNIQUE (entity_code)'),
       'birth_registry_entity_code_unique UNIQUE (entity_code) (KB-2590 §2)'
UNION ALL
-- An INVALID leftover of an interrupted step 2 is tolerated: the runner drops it before building.
SELECT 'no composite constraint or valid composite index', 'unapplied',
       NOT EXISTS (SELECT 1 FROM pg_constraint k, br WHERE k.conrelid = br.oid AND k.conname = 'birth_registry_code_collection_uq')
       AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = to_regclass('public.birth_registry_code_collection_uq') AND i.indisvalid),
       'birth_registry_code_collection_uq absent'
UNION ALL
-- KB-2590 §3: "functions referencing ON CONFLICT (entity_code): 2" — both still carry the entry target.
SELECT 'entry conflict targets', 'unapplied',
       (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
           AND p.proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id')
           AND pg_get_functiondef(p.oid) LIKE '%ON CONFLICT (entity_code) DO NOTHING%') = 2
       AND to_regprocedure('public.fn_birth_gate()') IS NOT NULL,
       'fn_birth_registry_auto, fn_birth_registry_auto_id on ON CONFLICT (entity_code); fn_birth_gate present'
UNION ALL
SELECT 'permit ledger absent', 'unapplied',
       to_regclass('public.birth_admission_permit') IS NULL,
       'birth_admission_permit absent (KB-3A66 §2)'
UNION ALL
SELECT 'no permit gate or finalize on dot_tools', 'unapplied',
       NOT EXISTS (SELECT 1 FROM pg_trigger t, dt WHERE t.tgrelid = dt.oid AND t.tgname IN ('trg_permit_gate_dot_tools', 'trg_dt_finalize')),
       'dot_tools trigger set as found (KB-2590 §5: 13 triggers)';
