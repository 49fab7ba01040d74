-- Issue 9 item 6: the statements that build, inside the rehearsal's transaction, an exact clone of
-- schema public under the name public, after the live schema is renamed out of the way (rehearsal/clone.ts
-- says why). Read BEFORE the rename, under search_path = pg_catalog, so every name pg_get_*def prints is
-- qualified ("public.x"): executed after the rename, each resolves to the clone. The live objects are
-- named by $1, the name the live schema will carry inside the transaction, and only read (LIKE, SELECT:
-- ACCESS SHARE). $2: the tables the packet itself creates — cloned as ordinary tables, every other
-- (the estate's, with its bulk rows) UNLOGGED: no WAL for a copy that is always rolled back, and a packet
-- table may reference a packet table (a permanent table may not reference an unlogged one).
-- One row per statement: (phase, ord, what, sql). Phase 0 rows are refusals: something this clone does
-- not reproduce, so the rehearsal stops before any step (never a silent half-clone).
-- Every identifier is quoted with format('%I'); every value with %L.
-- SECURITY.md, the attacker being the estate owner (who may CREATE in public): the rehearsal is a
-- superuser, and the clone re-creates code the estate owner wrote. No such code runs with the
-- superuser's rights: every object gets its live owner (41) before any of it can run; the rows are
-- copied as the table's owner (60: CHECKs and generated columns run on INSERT as the current user);
-- index expressions, REFRESH and ANALYZE run as the table owner (PostgreSQL's security-restricted
-- operations); triggers are created after the copy. rehearsal/clone.ts runs every statement alone
-- (extended protocol: one statement or an error) under search_path = pg_catalog, as pg_dump restores.
WITH p AS (
  SELECT $1::text AS live, $2::text[] AS logged, 'public'::regnamespace AS nsp
), rels AS (
  SELECT c.oid, c.relname, c.relkind, c.relowner, c.relacl, c.reloptions, c.relispopulated, c.relpersistence
    FROM pg_class c, p WHERE c.relnamespace = p.nsp
), tabs AS (
  SELECT * FROM rels WHERE relkind = 'r'
), acl AS (
  -- One GRANT per (object, privilege, grantee); the owner's and PUBLIC's defaults are revoked first.
  SELECT r.oid, r.relname, r.relkind, r.relowner, x.privilege_type, x.grantee, x.is_grantable
    FROM rels r, aclexplode(r.relacl) x WHERE r.relacl IS NOT NULL AND r.relkind IN ('r', 'v', 'm', 'S')
), seqdep AS (
  -- Sequences owned by a column: identity ('i') or serial ('a').
  SELECT d.objid AS seq, d.refobjid AS tab, d.refobjsubid AS attnum, d.deptype
    FROM pg_depend d JOIN rels s ON s.oid = d.objid AND s.relkind = 'S'
   WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('i', 'a')
), fns AS (
  SELECT pr.oid, pr.prokind, pr.proowner, pr.proacl FROM pg_proc pr, p WHERE pr.pronamespace = p.nsp
), grantee AS (
  SELECT 0::oid AS oid, 'PUBLIC' AS name
  UNION ALL
  SELECT r.oid, quote_ident(r.rolname) FROM pg_roles r
)
SELECT phase, ord, what, sql FROM (
  -- ── 0: refusals ────────────────────────────────────────────────────────────────────────────────
  SELECT 0 AS phase, r.relname AS ord, format('%s public.%s', CASE r.relkind WHEN 'p' THEN 'partitioned table'
           WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'composite type' ELSE 'relation of kind ' || r.relkind::text END, r.relname) AS what, NULL AS sql
    FROM rels r WHERE r.relkind IN ('p', 'f', 'c', 'I')
  UNION ALL
  SELECT 0, r.relname, format('public.%s has row level security or rules', r.relname), NULL
    FROM rels r JOIN pg_class c ON c.oid = r.oid WHERE c.relrowsecurity OR c.relhasrules AND r.relkind = 'r'
  UNION ALL
  SELECT 0, r.relname, format('public.%s has inheritance children or parents', r.relname), NULL
    FROM rels r WHERE EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = r.oid OR i.inhparent = r.oid)
  UNION ALL
  SELECT 0, w.rulename, format('rule %s on public.%s', w.rulename, r.relname), NULL
    FROM pg_rewrite w JOIN rels r ON r.oid = w.ev_class WHERE w.rulename <> '_RETURN'
  UNION ALL
  SELECT 0, t.typname, format('type public.%s (%s)', t.typname, t.typtype::text), NULL
    FROM pg_type t, p
   WHERE t.typnamespace = p.nsp
     AND NOT EXISTS (SELECT 1 FROM rels r WHERE r.oid = t.typrelid)
     AND NOT (t.typcategory = 'A' AND EXISTS (SELECT 1 FROM pg_type e WHERE e.oid = t.typelem AND e.typnamespace = p.nsp))
  UNION ALL
  SELECT 0, f.oid::regprocedure::text, format('%s %s', CASE f.prokind WHEN 'a' THEN 'aggregate' ELSE 'window function' END, f.oid::regprocedure), NULL
    FROM fns f WHERE f.prokind IN ('a', 'w')
  UNION ALL
  SELECT 0, r.relname || '.' || a.attname, format('default of view column public.%s.%s', r.relname, a.attname), NULL
    FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid WHERE r.relkind IN ('v', 'm') AND a.atthasdef

  -- ── 1: the live event triggers stay quiet while the clone is built (they fire on every DDL of this
  -- session, and a function of theirs that names public.* would find it half built); 99 restores them.
  UNION ALL
  SELECT 1, e.evtname, format('event trigger %s off', e.evtname), format('ALTER EVENT TRIGGER %I DISABLE', e.evtname)
    FROM pg_event_trigger e WHERE e.evtenabled <> 'D'
  -- ── 5: the swap ───────────────────────────────────────────────────────────────────────────────
  UNION ALL
  SELECT 5, '1', 'schema public renamed', format('ALTER SCHEMA public RENAME TO %I', p.live) FROM p
  UNION ALL
  SELECT 5, '2', 'schema public (clone)', format('CREATE SCHEMA public AUTHORIZATION %I', pg_get_userbyid(n.nspowner))
    FROM pg_namespace n, p WHERE n.oid = p.nsp
  -- its privileges at once: the owners copy their rows through it (60)
  UNION ALL
  SELECT 6, '5', 'privileges of schema public', format('REVOKE ALL ON SCHEMA public FROM PUBLIC, %I', pg_get_userbyid(n.nspowner))
    FROM pg_namespace n, p WHERE n.oid = p.nsp AND n.nspacl IS NOT NULL
  UNION ALL
  SELECT 6, '6' || x.privilege_type || g.name, 'privileges of schema public',
         format('GRANT %s ON SCHEMA public TO %s%s', x.privilege_type, g.name, CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_namespace n, p, aclexplode(n.nspacl) x JOIN grantee g ON g.oid = x.grantee
   WHERE n.oid = p.nsp AND n.nspacl IS NOT NULL
  -- ── 20: free-standing and serial sequences (identity ones come with their column) ─────────────
  UNION ALL
  SELECT 20, r.relname, 'sequence ' || r.relname,
         format('CREATE %sSEQUENCE public.%I AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s %s',
                CASE WHEN r.relpersistence = 'u' THEN 'UNLOGGED ' ELSE '' END, r.relname, format_type(s.seqtypid, NULL),
                s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)
    FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
   WHERE r.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM seqdep d WHERE d.seq = r.oid AND d.deptype = 'i')
  -- ── 30: tables: columns, types, NOT NULL, defaults, CHECK constraints, storage, compression,
  -- generated columns — copied as expression trees, never re-parsed from text (a re-parsed
  -- varchar IN-list CHECK comes back spelled differently, and the fidelity check would refuse it).
  UNION ALL
  SELECT 30, t.relname, 'table ' || t.relname,
         format('CREATE %sTABLE public.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING GENERATED)%s',
                CASE WHEN t.relname = ANY (p.logged) AND t.relpersistence = 'p' THEN '' ELSE 'UNLOGGED ' END,
                t.relname, p.live, t.relname,
                CASE WHEN t.reloptions IS NULL THEN '' ELSE format(' WITH (%s)', array_to_string(t.reloptions, ', ')) END)
    FROM tabs t, p
  UNION ALL
  -- Identity columns keep their sequence's name and options (its value is set in phase 65).
  SELECT 31, t.relname || '.' || a.attname, format('identity %s.%s', t.relname, a.attname),
         format('ALTER TABLE public.%I ALTER COLUMN %I ADD GENERATED %s AS IDENTITY (SEQUENCE NAME public.%I INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s %s)',
                t.relname, a.attname, CASE a.attidentity WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END, sr.relname,
                s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)
    FROM tabs t
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity <> ''
    JOIN seqdep d ON d.tab = t.oid AND d.attnum = a.attnum AND d.deptype = 'i'
    JOIN pg_class sr ON sr.oid = d.seq
    JOIN pg_sequence s ON s.seqrelid = d.seq
  -- ── 40: functions and views, one round after another until all exist (dependencies both ways) ──
  UNION ALL
  SELECT 40, f.oid::regprocedure::text, 'function ' || f.oid::regprocedure::text, pg_get_functiondef(f.oid)
    FROM fns f WHERE f.prokind IN ('f', 'p')
  UNION ALL
  SELECT 40, r.relname, 'view ' || r.relname,
         format('CREATE %sVIEW public.%I%s AS %s%s', CASE r.relkind WHEN 'm' THEN 'MATERIALIZED ' ELSE '' END, r.relname,
                CASE WHEN r.reloptions IS NULL THEN '' ELSE format(' WITH (%s)', array_to_string(r.reloptions, ', ')) END,
                rtrim(pg_get_viewdef(r.oid), E'; \n'), CASE r.relkind WHEN 'm' THEN ' WITH NO DATA' ELSE '' END)
    FROM rels r WHERE r.relkind IN ('v', 'm')
  -- ── 41: owners, before any of their code can run (identity sequences follow their table) ─────
  UNION ALL
  SELECT 41, r.relname, 'owner of ' || r.relname,
         format('ALTER %s public.%I OWNER TO %I', CASE r.relkind WHEN 'r' THEN 'TABLE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'SEQUENCE' END,
                r.relname, pg_get_userbyid(r.relowner))
    FROM rels r WHERE r.relkind IN ('r', 'v', 'm') OR r.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM seqdep d WHERE d.seq = r.oid AND d.deptype = 'i')
  UNION ALL
  SELECT 41, f.oid::regprocedure::text, 'owner of ' || f.oid::regprocedure::text,
         format('ALTER %s %s OWNER TO %I', CASE f.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, f.oid::regprocedure, pg_get_userbyid(f.proowner))
    FROM fns f WHERE f.prokind IN ('f', 'p')
  -- ── 50: the defaults and CHECKs that call a sequence or function of public: LIKE copied them
  -- pointing at the live one (by OID); set again from their text, they resolve to the clone's ────
  UNION ALL
  SELECT 50, t.relname || '.' || a.attname, format('default %s.%s', t.relname, a.attname),
         format('ALTER TABLE public.%I ALTER COLUMN %I SET DEFAULT %s', t.relname, a.attname, pg_get_expr(ad.adbin, ad.adrelid))
    FROM tabs t
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    JOIN pg_attrdef ad ON ad.adrelid = t.oid AND ad.adnum = a.attnum
   WHERE EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                    AND (d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM rels)
                         OR d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM fns)))
  UNION ALL
  SELECT 50, t.relname || '.' || k.conname, format('check %s.%s', t.relname, k.conname),
         format('ALTER TABLE public.%I DROP CONSTRAINT %I, ADD CONSTRAINT %I %s', t.relname, k.conname, k.conname, pg_get_constraintdef(k.oid))
    FROM pg_constraint k JOIN tabs t ON t.oid = k.conrelid
   WHERE k.contype = 'c'
     AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
                    AND (d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM rels) AND d.refobjid <> t.oid
                         OR d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM fns)))
  UNION ALL
  SELECT 51, sr.relname, 'serial ' || sr.relname,
         format('ALTER SEQUENCE public.%I OWNED BY public.%I.%I', sr.relname, t.relname, a.attname)
    FROM seqdep d JOIN pg_class sr ON sr.oid = d.seq JOIN tabs t ON t.oid = d.tab
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.attnum
   WHERE d.deptype = 'a'
  -- ── 60: the rows, every one (rehearsal/clone.ts: the complete copy is the choice by cost). A value
  -- of a reg* type is an OID: one naming a live object (step 16's dims name their functions) is
  -- carried over by name instead, so it names the clone's object, as it names the live one live ──
  UNION ALL
  SELECT 60, t.relname || ' 1', 'rows of ' || t.relname, format('SET LOCAL ROLE %I', pg_get_userbyid(t.relowner))
    FROM tabs t
  UNION ALL
  SELECT 60, t.relname || ' 3', 'rows of ' || t.relname, 'RESET ROLE'
    FROM tabs t
  UNION ALL
  SELECT 60, t.relname || ' 2', 'rows of ' || t.relname,
         format('INSERT INTO public.%1$I (%2$s) OVERRIDING SYSTEM VALUE SELECT %3$s FROM %4$I.%1$I', t.relname, cols.list, cols.sel, p.live)
    FROM tabs t, p,
         LATERAL (SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) AS list,
                         string_agg(CASE WHEN a.atttypid IN ('regproc'::regtype, 'regprocedure'::regtype, 'regoper'::regtype, 'regoperator'::regtype,
                                                             'regclass'::regtype, 'regtype'::regtype, 'regconfig'::regtype, 'regdictionary'::regtype,
                                                             'regnamespace'::regtype, 'regcollation'::regtype)
                                         THEN format('(CASE WHEN %1$I::text = %2$L THEN ''public'' ELSE replace(%1$I::text, %3$L, ''public.'') END)::%4$s',
                                                     a.attname, p.live, p.live || '.', format_type(a.atttypid, a.atttypmod))
                                         ELSE format('%I', a.attname) END, ', ' ORDER BY a.attnum) AS sel
                    FROM pg_attribute a
                   WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') cols
   WHERE cols.list IS NOT NULL
  UNION ALL
  SELECT 65, r.relname, 'value of ' || r.relname,
         format('SELECT pg_catalog.setval(%L, s.last_value, s.is_called) FROM %I.%I s', format('public.%I', r.relname), p.live, r.relname)
    FROM rels r, p WHERE r.relkind = 'S'
  UNION ALL
  SELECT 66, r.relname, 'refresh ' || r.relname, format('REFRESH MATERIALIZED VIEW public.%I', r.relname)
    FROM rels r WHERE r.relkind = 'm' AND r.relispopulated
  -- ── 70: keys first, then foreign keys (CHECKs came with LIKE); 75: the other indexes ──────────
  UNION ALL
  SELECT 70, CASE k.contype WHEN 'f' THEN '3' ELSE '1' END || t.relname || '.' || k.conname,
         format('constraint %s.%s', t.relname, k.conname),
         format('ALTER TABLE public.%I ADD CONSTRAINT %I %s', t.relname, k.conname, pg_get_constraintdef(k.oid))
    FROM pg_constraint k JOIN tabs t ON t.oid = k.conrelid WHERE k.contype IN ('p', 'u', 'x', 'f')
  UNION ALL
  SELECT 75, ic.relname, 'index ' || ic.relname, pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN rels r ON r.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
   WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
  -- ── 80: triggers, bound to the cloned functions, in their enabled state ───────────────────────
  UNION ALL
  SELECT 80, r.relname || '.' || tg.tgname, format('trigger %s.%s', r.relname, tg.tgname), pg_get_triggerdef(tg.oid)
    FROM pg_trigger tg JOIN rels r ON r.oid = tg.tgrelid WHERE NOT tg.tgisinternal
  UNION ALL
  SELECT 81, r.relname || '.' || tg.tgname, format('trigger %s.%s %s', r.relname, tg.tgname, tg.tgenabled),
         format('ALTER TABLE public.%I %s TRIGGER %I', r.relname,
                CASE tg.tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'A' THEN 'ENABLE ALWAYS' ELSE 'ENABLE REPLICA' END, tg.tgname)
    FROM pg_trigger tg JOIN rels r ON r.oid = tg.tgrelid WHERE NOT tg.tgisinternal AND tg.tgenabled <> 'O'
  -- ── 90: privileges exactly as live ──────────────────────────────────────────────────────────
  UNION ALL
  SELECT 90, '0' || r.relname, 'privileges of ' || r.relname,
         format('REVOKE ALL ON %s public.%I FROM PUBLIC, %I', CASE r.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.relname, pg_get_userbyid(r.relowner))
    FROM rels r WHERE r.relacl IS NOT NULL AND r.relkind IN ('r', 'v', 'm', 'S')
  UNION ALL
  SELECT 90, '1' || a.relname || a.privilege_type || g.name, 'privileges of ' || a.relname,
         format('GRANT %s ON %s public.%I TO %s%s', a.privilege_type, CASE a.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, a.relname, g.name,
                CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM acl a JOIN grantee g ON g.oid = a.grantee
  UNION ALL
  SELECT 90, '2' || t.relname || a.attname || x.privilege_type || g.name, format('privileges of %s.%s', t.relname, a.attname),
         format('GRANT %s (%I) ON TABLE public.%I TO %s%s', x.privilege_type, a.attname, t.relname, g.name,
                CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM tabs t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND a.attacl IS NOT NULL, aclexplode(a.attacl) x
    JOIN grantee g ON g.oid = x.grantee
  UNION ALL
  SELECT 90, '3' || f.oid::regprocedure::text, 'privileges of ' || f.oid::regprocedure::text,
         format('REVOKE ALL ON %s %s FROM PUBLIC, %I', CASE f.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, f.oid::regprocedure, pg_get_userbyid(f.proowner))
    FROM fns f WHERE f.proacl IS NOT NULL AND f.prokind IN ('f', 'p')
  UNION ALL
  SELECT 90, '4' || f.oid::regprocedure::text || g.name, 'privileges of ' || f.oid::regprocedure::text,
         format('GRANT EXECUTE ON %s %s TO %s%s', CASE f.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, f.oid::regprocedure, g.name,
                CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM fns f, aclexplode(f.proacl) x JOIN grantee g ON g.oid = x.grantee
   WHERE f.proacl IS NOT NULL AND f.prokind IN ('f', 'p')

  -- ── 95: statistics for the planner (the plan lines query 1.1M births); 99: event triggers back ──
  UNION ALL
  SELECT 95, t.relname, 'analyze ' || t.relname, format('ANALYZE public.%I', t.relname)
    FROM tabs t
  UNION ALL
  SELECT 99, e.evtname, format('event trigger %s %s', e.evtname, e.evtenabled),
         format('ALTER EVENT TRIGGER %I %s', e.evtname, CASE e.evtenabled WHEN 'A' THEN 'ENABLE ALWAYS' WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'ENABLE' END)
    FROM pg_event_trigger e WHERE e.evtenabled <> 'D'
) x
ORDER BY phase, ord COLLATE "C";
