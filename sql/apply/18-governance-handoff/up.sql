-- KB-35E7 §5, KB-3A66 §8, KB-4410 §F: the governance handoff — a decoupled cursor tail over the born
-- tail of birth_registry and over registry_changelog (the CDC tail source, KB-2590 §7). Every row of
-- either tail marks its (entity_code, collection) dirty in governance_candidate_state; every birth is
-- handed over as a handoff.object_born event in event_pending: captured while no OSPA covers the
-- handoff (governance_build_authorization, 0 rows as found), emitted once one does. It never blocks a
-- birth: it only reads birth_registry and registry_changelog (no row locks) and writes tables no birth
-- path touches. The Temporal workflow governanceHandoff calls fn_governance_handoff_batch in a loop.
--
-- "0 new tables" (KB-35E7 §5) is about governance objects: the handoff writes only the estate's own
-- governance tables. What the tail keeps for itself — its cursor, the ids it is still waiting for and
-- the history of its batches — are birthgate's tables, owned by birthgate_owner like the permit ledger.
--
-- The cursor (birth_handoff_cursor.last_id) is advanced in the same transaction as the batch it covers,
-- so a batch is handed off exactly once whatever happens to the caller (a crash after the COMMIT, a
-- retried activity, two tails at once: they queue on the cursor row).
--
-- Out-of-order commits. Identity ids are taken before commit, so a transaction that commits late leaves
-- a hole behind the cursor: id 41 still invisible when 42 is handed off. Such holes become gaps
-- (birth_handoff_gap: a multirange of ids, the snapshot horizon they were first missed at, when) and
-- every batch re-reads them: an id that became visible is handed off then, exactly once. A gap is
-- given up ("abandoned": a rolled-back insert, an id a sequence skipped) only when both hold:
--   - pg_snapshot_xmin of a snapshot taken BEFORE the re-read is at or past the gap's horizon (the
--     xmax of the snapshot that first missed it): every transaction that held an xid then has ended,
--     so whatever it committed is visible to the re-read. This covers a writer that holds its
--     transaction open for any length of time after its first write.
--   - the gap is older than gap_grace (default 10 min). It covers the one case the horizon cannot: a
--     transaction whose FIRST write is the insert that took the id — nextval runs before the row's
--     xid is assigned, inside that one INSERT statement (its BEFORE triggers included). The bound is
--     therefore the longest such statement: the estate's statement_timeout where one is set; 10 min
--     is far above any statement the estate runs (the worker's own statement_timeout is 8 s). Births
--     and the estate's audit rows are written by AFTER triggers of a transaction that already has its
--     xid, so for them the horizon alone is exact.
-- It relies on ids following nextval order: the source's identity sequence must not cache values
-- (CACHE 1, the default; checked on every batch). An id written explicitly below the cursor (the
-- identity is BY DEFAULT) is not seen.
--
-- Trust (SECURITY.md): fn_governance_handoff_batch is SECURITY DEFINER and writes estate tables that
-- directus owns. Before it writes one it takes ROW EXCLUSIVE on it (which waits for, and blocks, CREATE
-- TRIGGER/RULE/POLICY/INDEX and ALTER TABLE) and refuses (BG403) unless the table is a plain table
-- without rules or row security, every trigger function on it belongs to birthgate_owner or a
-- superuser, no column has a user-defined type and no index, constraint or default calls a
-- user-defined function or operator — the check fn_admission_estate_write_check makes for
-- birth_registry. A trigger directus plants on governance_candidate_state or event_pending therefore
-- never runs with birthgate_owner's rights: the handoff stops, loudly, until the table is restored.
-- The tables it only reads must be plain tables with built-in column types (a cast or type of the
-- estate owner's would run inside the read).

CREATE TABLE public.birth_handoff_cursor (
  source          text PRIMARY KEY CHECK (source IN ('registry_changelog', 'birth_registry')),
  last_id         bigint NOT NULL CHECK (last_id >= 0),  -- every id <= last_id is handed off, abandoned, or open in birth_handoff_gap
  started_from    bigint NOT NULL,                       -- last_id when the tail began (births before it are the pre-handoff backlog)
  gap_grace       interval NOT NULL DEFAULT interval '10 minutes' CHECK (gap_grace >= interval '0'),
  captured_since  bigint,                                -- births: the oldest event this tail captured and has not emitted yet
  rows_handed_off bigint NOT NULL DEFAULT 0,
  batches         bigint NOT NULL DEFAULT 0,
  updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE public.birth_handoff_gap (
  gap_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source  text NOT NULL CHECK (source IN ('registry_changelog', 'birth_registry')),
  ids     int8multirange NOT NULL CHECK (NOT isempty(ids)),  -- ids not yet visible
  horizon xid8 NOT NULL,                                     -- pg_snapshot_xmax of the snapshot that first missed them
  seen_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_birth_handoff_gap_source ON public.birth_handoff_gap (source);

-- One row per batch and source that did something: which source rows it handed off (each id appears
-- in exactly one row of this table over its whole life), the gaps it opened and gave up.
CREATE TABLE public.birth_handoff_batch (
  batch_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source      text NOT NULL CHECK (source IN ('registry_changelog', 'birth_registry')),
  ids         bigint[] NOT NULL,
  from_id     bigint NOT NULL,   -- last_id before the batch
  to_id       bigint NOT NULL,   -- last_id after it
  gaps_opened int8multirange,
  abandoned   int8multirange,
  candidates  integer NOT NULL DEFAULT 0,  -- governance_candidate_state rows upserted dirty
  events      integer NOT NULL DEFAULT 0,  -- handoff.object_born events written
  emitted     integer NOT NULL DEFAULT 0,  -- earlier captured events emitted
  mode        text NOT NULL CHECK (mode IN ('capture', 'emit')),
  actor       text NOT NULL,
  txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_birth_handoff_batch_source ON public.birth_handoff_batch (source, batch_id);
REVOKE ALL ON TABLE public.birth_handoff_cursor, public.birth_handoff_gap, public.birth_handoff_batch FROM PUBLIC;

-- The changelog tail starts at its beginning: all of registry_changelog is the CDC source (70,434 rows
-- live, KB-3A66 §8). The born tail starts at the births that exist now: the 1.1M births before the
-- handoff are the pre-handoff backlog, which reaches governance through the changelog and the legacy
-- scanner (KB-4410 §F), not as 1.1M object_born events. A birth still uncommitted now with an id
-- below the newest one is caught as a gap: the holes among the newest 1,000 births are opened as gaps.
INSERT INTO public.birth_handoff_cursor (source, last_id, started_from) VALUES ('registry_changelog', 0, 0);
INSERT INTO public.birth_handoff_cursor (source, last_id, started_from)
SELECT 'birth_registry', coalesce(max(b.id), 0), coalesce(max(b.id), 0) FROM public.birth_registry b;
INSERT INTO public.birth_handoff_gap (source, ids, horizon)
SELECT 'birth_registry', h.ids, pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())
  FROM (SELECT pg_catalog.range_agg(pg_catalog.int8range(s.prev + 1, s.id)) AS ids
          FROM (SELECT t.id, lag(t.id) OVER (ORDER BY t.id) AS prev
                  FROM (SELECT b.id FROM public.birth_registry b ORDER BY b.id DESC LIMIT 1000) t) s
         WHERE s.id > s.prev + 1) h
 WHERE h.ids IS NOT NULL;

-- What the definer code may do on the estate's governance tables, and nothing more. (SELECT on
-- birth_registry and registry_changelog: steps 1 and 12.) UPDATE on event_type_registry is table-wide
-- only because LOCK TABLE wants a table privilege; the code updates handoff.object_born's `active`.
GRANT SELECT, INSERT, UPDATE ON public.governance_candidate_state TO birthgate_owner;
GRANT SELECT, INSERT, UPDATE ON public.event_pending TO birthgate_owner;
GRANT SELECT, UPDATE ON public.event_type_registry TO birthgate_owner;
GRANT SELECT ON public.governance_build_authorization TO birthgate_owner;

-- May definer code read the tables of p_read and write those of p_write? BG403 when code of theirs
-- could run with birthgate_owner's rights; BG428 when a table read as a tail's source may hand out ids
-- out of nextval order. The caller takes ROW EXCLUSIVE on every table of p_write first. One query for
-- every table (a batch asks once): these are catalog lookups by index.
CREATE FUNCTION public.fn_handoff_estate_check(p_read regclass[], p_write regclass[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v record;
BEGIN
  -- Dependencies on built-in (pinned) objects are never recorded in pg_depend, so any recorded
  -- dependency of an index, constraint or default on a function or operator is a user-defined one.
  SELECT t.rel, t.w, x.why INTO v
    FROM (SELECT r AS rel, false AS w FROM unnest(p_read) AS r
          UNION ALL SELECT r, true FROM unnest(p_write) AS r) t
    JOIN pg_catalog.pg_class c ON c.oid = t.rel
    CROSS JOIN LATERAL (SELECT CASE
      WHEN c.relkind <> 'r' THEN format('relkind %s', c.relkind)
      WHEN c.relhasrules THEN 'it has rules'
      WHEN c.relrowsecurity THEN 'row level security is enabled'
      WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                      AND ty.typnamespace <> 'pg_catalog'::regnamespace) THEN 'a column has a user-defined type'
      WHEN t.w AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger tg
                             JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid
                            WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal
                              AND p.proowner <> 'birthgate_owner'::regrole
                              AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p.proowner))
        THEN 'a trigger runs a function of an untrusted owner'
      WHEN t.w AND (
           EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                     JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
                    WHERE i.indrelid = c.oid
                      AND d.refclassid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass))
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                     JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_constraint'::regclass AND d.objid = k.oid
                    WHERE k.conrelid = c.oid
                      AND d.refclassid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass))
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef ad
                     JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
                    WHERE ad.adrelid = c.oid
                      AND d.refclassid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass)))
        THEN 'an index, constraint or default calls a user-defined function or operator'
      WHEN NOT t.w AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_sequence q ON q.seqrelid = d.objid
                                WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
                                  AND d.refobjid = c.oid AND d.deptype IN ('a', 'i') AND q.seqcache > 1)
        THEN 'CACHE'
      END AS why) x
   WHERE x.why IS NOT NULL
   LIMIT 1;
  IF v.why = 'CACHE' THEN
    RAISE EXCEPTION USING ERRCODE = 'BG428',
      MESSAGE = format('governance handoff refuses to tail %s: its id sequence caches %s values per session, so ids do not follow nextval order',
                       v.rel, (SELECT max(q.seqcache) FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_sequence q ON q.seqrelid = d.objid
                                WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = v.rel AND d.deptype IN ('a', 'i'))),
      HINT = 'ALTER SEQUENCE … CACHE 1 (the identity default)';
  ELSIF v.why IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'BG403',
      MESSAGE = format('governance handoff refuses to %s %s: %s (its code would run with birthgate_owner''s rights)',
                       CASE WHEN v.w THEN 'write' ELSE 'read' END, v.rel, v.why),
      HINT = 'the handoff waits and retries; restore the table, or have its owner review the change';
  END IF;
END;
$$;
REVOKE ALL ON FUNCTION public.fn_handoff_estate_check(regclass[], regclass[]) FROM PUBLIC;

-- After a source's rows are read and handed off: settle its gaps, advance its cursor, log the batch.
-- p_xmin was taken before the rows were read, p_horizon after (the header says why the order matters).
CREATE FUNCTION public.fn_handoff_advance(p_source text, p_fresh bigint[], p_filled bigint[], p_limit integer,
                                          p_xmin xid8, p_horizon xid8, p_candidates integer, p_events integer,
                                          p_emitted integer, p_emit boolean, p_actor text, p_now timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c public.birth_handoff_cursor;
  g public.birth_handoff_gap;
  v_fresh bigint[] := coalesce(p_fresh, '{}');
  v_filled bigint[] := coalesce(p_filled, '{}');
  v_filled_mr int8multirange;
  v_rest int8multirange;
  v_opened int8multirange;
  v_abandoned int8multirange := '{}';
  -- A gap may be given up only when the re-read took every visible row of the gaps (not cut by the limit).
  v_fill_complete boolean := cardinality(coalesce(p_filled, '{}')) < p_limit;
  v_to bigint;
  v_open numeric;
BEGIN
  SELECT * INTO STRICT c FROM public.birth_handoff_cursor k WHERE k.source = p_source FOR UPDATE;
  SELECT pg_catalog.range_agg(pg_catalog.int8range(f.id, f.id + 1)) INTO v_filled_mr FROM unnest(v_filled) AS f(id);
  v_filled_mr := coalesce(v_filled_mr, '{}'::int8multirange);

  FOR g IN SELECT * FROM public.birth_handoff_gap k WHERE k.source = p_source ORDER BY k.gap_id FOR UPDATE LOOP
    v_rest := g.ids - v_filled_mr;
    IF isempty(v_rest) THEN
      DELETE FROM public.birth_handoff_gap k WHERE k.gap_id = g.gap_id;
    ELSIF v_fill_complete AND g.horizon <= p_xmin AND g.seen_at <= p_now - c.gap_grace THEN
      v_abandoned := v_abandoned + v_rest;
      DELETE FROM public.birth_handoff_gap k WHERE k.gap_id = g.gap_id;
    ELSIF v_rest <> g.ids THEN
      UPDATE public.birth_handoff_gap k SET ids = v_rest WHERE k.gap_id = g.gap_id;
    END IF;
  END LOOP;

  -- New holes: ids between the cursor and the newest row read that the read did not see.
  SELECT pg_catalog.range_agg(pg_catalog.int8range(s.prev + 1, s.id)) INTO v_opened
    FROM (SELECT f.id, lag(f.id, 1, c.last_id) OVER (ORDER BY f.id) AS prev FROM unnest(v_fresh) AS f(id)) s
   WHERE s.id > s.prev + 1;
  IF v_opened IS NOT NULL THEN
    INSERT INTO public.birth_handoff_gap (source, ids, horizon, seen_at) VALUES (p_source, v_opened, p_horizon, p_now);
  END IF;

  v_to := greatest(c.last_id, coalesce((SELECT max(f.id) FROM unnest(v_fresh) AS f(id)), c.last_id));
  IF cardinality(v_fresh) + cardinality(v_filled) > 0 OR NOT isempty(v_abandoned) OR p_emitted > 0 THEN
    UPDATE public.birth_handoff_cursor k
       SET last_id = v_to, rows_handed_off = k.rows_handed_off + cardinality(v_fresh) + cardinality(v_filled),
           batches = k.batches + 1, updated_at = p_now
     WHERE k.source = p_source;
    INSERT INTO public.birth_handoff_batch (source, ids, from_id, to_id, gaps_opened, abandoned, candidates, events, emitted, mode, actor)
    VALUES (p_source, v_filled || v_fresh, c.last_id, v_to, v_opened, nullif(v_abandoned, '{}'::int8multirange),
            p_candidates, p_events, p_emitted, CASE WHEN p_emit THEN 'emit' ELSE 'capture' END, p_actor);
  END IF;

  SELECT coalesce(sum(upper(r) - lower(r)), 0) INTO v_open
    FROM public.birth_handoff_gap k, unnest(k.ids) AS r WHERE k.source = p_source;
  RETURN jsonb_build_object(
    'handed_off', cardinality(v_fresh) + cardinality(v_filled), 'filled', cardinality(v_filled), 'last_id', v_to,
    'gaps_opened', coalesce(v_opened::text, ''), 'abandoned', (SELECT coalesce(sum(upper(r) - lower(r)), 0) FROM unnest(v_abandoned) AS r),
    'open_gap_ids', v_open, 'candidates', p_candidates, 'events', p_events, 'emitted', p_emitted,
    'more', cardinality(v_fresh) >= p_limit OR NOT v_fill_complete);
END;
$$;
REVOKE ALL ON FUNCTION public.fn_handoff_advance(text, bigint[], bigint[], integer, xid8, xid8, integer, integer, integer, boolean, text, timestamptz) FROM PUBLIC;

-- The changelog tail: every row marks (entity_code, table_name) dirty. One statement reads the next
-- rows after the cursor and the rows that appeared in open gaps, and upserts their candidates (one
-- snapshot; several rows of one candidate in a batch become one upsert carrying the highest id).
CREATE FUNCTION public.fn_handoff_changelog(p_limit integer, p_emit boolean, p_actor text, p_now timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_last bigint;
  v_xmin xid8;
  v_open int8multirange;
  v_fresh bigint[];
  v_filled bigint[];
  v_candidates integer;
BEGIN
  SELECT k.last_id INTO STRICT v_last FROM public.birth_handoff_cursor k WHERE k.source = 'registry_changelog' FOR UPDATE;
  v_xmin := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
  SELECT pg_catalog.range_agg(r) INTO v_open FROM public.birth_handoff_gap k, unnest(k.ids) AS r WHERE k.source = 'registry_changelog';
  WITH fresh AS (
    SELECT rc.id, rc.table_name::text AS coll, rc.entity_code::text AS code
      FROM public.registry_changelog rc WHERE rc.id > v_last ORDER BY rc.id LIMIT p_limit
  ), filled AS (
    -- One index range scan per gap range (LATERAL): a plain join ordered by id would walk the whole
    -- primary key to find a handful of ids.
    SELECT x.id, x.coll, x.code
      FROM unnest(v_open) AS r,
           LATERAL (SELECT rc.id, rc.table_name::text AS coll, rc.entity_code::text AS code
                      FROM public.registry_changelog rc WHERE rc.id >= lower(r) AND rc.id < upper(r)
                     ORDER BY rc.id LIMIT p_limit) x
     ORDER BY x.id LIMIT p_limit
  ), batch AS (
    SELECT * FROM fresh UNION ALL SELECT * FROM filled
  ), up AS (
    INSERT INTO public.governance_candidate_state AS g (entity_code, collection_name, dirty, last_changelog_id, updated_at)
    SELECT b.code, b.coll, true, max(b.id), p_now FROM batch b WHERE b.code IS NOT NULL AND btrim(b.code) <> ''
     GROUP BY b.code, b.coll ORDER BY b.code, b.coll  -- one lock order for every writer that sorts the same way
    ON CONFLICT (entity_code, collection_name) DO UPDATE
      SET dirty = true, last_changelog_id = greatest(g.last_changelog_id, excluded.last_changelog_id), updated_at = excluded.updated_at
    RETURNING 1
  )
  SELECT (SELECT array_agg(f.id ORDER BY f.id) FROM fresh f), (SELECT array_agg(f.id ORDER BY f.id) FROM filled f),
         (SELECT count(*)::integer FROM up)
    INTO v_fresh, v_filled, v_candidates;
  RETURN public.fn_handoff_advance('registry_changelog', v_fresh, v_filled, p_limit, v_xmin,
                                   pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
                                   v_candidates, 0, 0, p_emit, p_actor, p_now);
END;
$$;
REVOKE ALL ON FUNCTION public.fn_handoff_changelog(integer, boolean, text, timestamptz) FROM PUBLIC;

-- The born tail: every new birth still 'born' when read marks its candidate dirty and is handed over
-- as handoff.object_born — captured (status 'captured') without OSPA, emitted (status 'emitted',
-- emitted_at) with it. A birth retired before the tail read it is passed over. With OSPA, the events
-- this tail captured earlier are emitted too, oldest first, p_limit per batch.
CREATE FUNCTION public.fn_handoff_births(p_limit integer, p_emit boolean, p_actor text, p_now timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_last bigint;
  v_since bigint;
  v_xmin xid8;
  v_open int8multirange;
  v_fresh bigint[];
  v_filled bigint[];
  v_candidates integer;
  v_events integer;
  v_first_event bigint;
  v_emitted integer := 0;
BEGIN
  SELECT k.last_id, k.captured_since INTO STRICT v_last, v_since
    FROM public.birth_handoff_cursor k WHERE k.source = 'birth_registry' FOR UPDATE;
  v_xmin := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
  SELECT pg_catalog.range_agg(r) INTO v_open FROM public.birth_handoff_gap k, unnest(k.ids) AS r WHERE k.source = 'birth_registry';
  WITH fresh AS (
    SELECT b.id, b.entity_code::text AS code, b.collection_name::text AS coll, b.status::text AS status,
           b.species_code::text AS species, b.governance_role::text AS role, b.born_at
      FROM public.birth_registry b WHERE b.id > v_last ORDER BY b.id LIMIT p_limit
  ), filled AS (
    SELECT x.*
      FROM unnest(v_open) AS r,
           LATERAL (SELECT b.id, b.entity_code::text AS code, b.collection_name::text AS coll, b.status::text AS status,
                           b.species_code::text AS species, b.governance_role::text AS role, b.born_at
                      FROM public.birth_registry b WHERE b.id >= lower(r) AND b.id < upper(r)
                     ORDER BY b.id LIMIT p_limit) x
     ORDER BY x.id LIMIT p_limit
  ), born AS (
    SELECT * FROM fresh WHERE status = 'born' UNION ALL SELECT * FROM filled WHERE status = 'born'
  ), up AS (
    INSERT INTO public.governance_candidate_state AS g (entity_code, collection_name, dirty, last_birth_id, updated_at)
    SELECT b.code, b.coll, true, max(b.id), p_now FROM born b GROUP BY b.code, b.coll ORDER BY b.code, b.coll
    ON CONFLICT (entity_code, collection_name) DO UPDATE
      SET dirty = true, last_birth_id = greatest(g.last_birth_id, excluded.last_birth_id), updated_at = excluded.updated_at
    RETURNING 1
  ), ev AS (
    INSERT INTO public.event_pending (event_type, payload, status, captured_at, emitted_at)
    SELECT 'handoff.object_born',
           jsonb_build_object('birth_id', b.id, 'entity_code', b.code, 'collection_name', b.coll, 'species_code', b.species,
                              'governance_role', b.role, 'born_at', b.born_at, 'source', 'birthgate.governance_handoff'),
           CASE WHEN p_emit THEN 'emitted' ELSE 'captured' END, p_now, CASE WHEN p_emit THEN p_now END
      FROM born b ORDER BY b.id
    RETURNING id
  )
  SELECT (SELECT array_agg(f.id ORDER BY f.id) FROM fresh f), (SELECT array_agg(f.id ORDER BY f.id) FROM filled f),
         (SELECT count(*)::integer FROM up), (SELECT count(*)::integer FROM ev), (SELECT min(e.id) FROM ev e)
    INTO v_fresh, v_filled, v_candidates, v_events, v_first_event;

  IF NOT p_emit AND v_events > 0 THEN
    v_since := coalesce(v_since, v_first_event);
  ELSIF p_emit AND v_since IS NOT NULL THEN
    -- The backlog this tail captured before OSPA: emitted now. A row another session holds is left
    -- for a later batch (SKIP LOCKED), never waited for.
    WITH due AS (
      SELECT e.id FROM public.event_pending e
       WHERE e.id >= v_since AND e.event_type = 'handoff.object_born' AND e.status = 'captured'
         AND e.payload ->> 'source' = 'birthgate.governance_handoff'
       ORDER BY e.id LIMIT p_limit FOR UPDATE SKIP LOCKED
    ), done AS (
      UPDATE public.event_pending e SET status = 'emitted', emitted_at = p_now FROM due WHERE e.id = due.id RETURNING e.id
    )
    SELECT count(*)::integer INTO v_emitted FROM done;
    SELECT min(e.id) INTO v_since FROM public.event_pending e
     WHERE e.id >= v_since AND e.event_type = 'handoff.object_born' AND e.status = 'captured'
       AND e.payload ->> 'source' = 'birthgate.governance_handoff';
  END IF;
  UPDATE public.birth_handoff_cursor k SET captured_since = v_since
   WHERE k.source = 'birth_registry' AND k.captured_since IS DISTINCT FROM v_since;

  RETURN public.fn_handoff_advance('birth_registry', v_fresh, v_filled, p_limit, v_xmin,
                                   pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
                                   v_candidates, v_events, v_emitted, p_emit, p_actor, p_now)
         || jsonb_build_object('more_to_emit', v_emitted >= p_limit);
END;
$$;
REVOKE ALL ON FUNCTION public.fn_handoff_births(integer, boolean, text, timestamptz) FROM PUBLIC;

-- The one entry point (EXECUTE for birthgate_worker): one batch of at most p_limit rows per source, in
-- one transaction — the caller sends it as a single statement. p_database names the estate database
-- the calling workflow serves: a worker connected to another database is refused (BG400).
-- OSPA: a non-revoked governance_build_authorization row whose scope covers the handoff ('*',
-- 'governance', 'governance.handoff' or 'handoff.object_born'). With it the batch activates
-- handoff.object_born in event_type_registry (what OSPA authorises; the handoff never deactivates it —
-- without OSPA it captures whatever the flag says) and emits.
CREATE FUNCTION public.fn_governance_handoff_batch(p_database text, p_limit integer, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_now timestamptz := clock_timestamp();
  v_ospa integer;
  v_emit boolean;
  v_activated boolean := false;
  v_changelog jsonb;
  v_births jsonb;
BEGIN
  PERFORM public.fn_admission_require_text('database', p_database, 63);
  PERFORM public.fn_admission_require_text('actor', p_actor, 500);
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400', MESSAGE = format('p_limit must be 1..10000, not %s', coalesce(p_limit::text, 'NULL'));
  END IF;
  IF p_database <> pg_catalog.current_database() THEN
    RAISE EXCEPTION USING ERRCODE = 'BG400',
      MESSAGE = format('this governance handoff serves database %s, but the worker is connected to %s', left(p_database, 63),
                       pg_catalog.current_database());
  END IF;
  -- One tail at a time: a second caller waits for the first one's batch (both cursor rows, one order).
  PERFORM 1 FROM public.birth_handoff_cursor k ORDER BY k.source FOR UPDATE;

  -- Trust before any read or write of the estate's tables (header): the tables written are locked first.
  LOCK TABLE public.governance_candidate_state IN ROW EXCLUSIVE MODE;
  LOCK TABLE public.event_pending IN ROW EXCLUSIVE MODE;
  PERFORM public.fn_handoff_estate_check(
    ARRAY['public.registry_changelog', 'public.birth_registry', 'public.governance_build_authorization']::regclass[],
    ARRAY['public.governance_candidate_state', 'public.event_pending']::regclass[]);

  SELECT count(*)::integer INTO v_ospa FROM public.governance_build_authorization a
   WHERE a.scope::text IN ('*', 'governance', 'governance.handoff', 'handoff.object_born')
     AND a.granted_at <= v_now AND (a.revoked_at IS NULL OR a.revoked_at > v_now);
  v_emit := v_ospa >= 1;
  IF v_emit THEN
    LOCK TABLE public.event_type_registry IN ROW EXCLUSIVE MODE;
    PERFORM public.fn_handoff_estate_check('{}'::regclass[], ARRAY['public.event_type_registry']::regclass[]);
    UPDATE public.event_type_registry t SET active = true WHERE t.event_type = 'handoff.object_born' AND NOT t.active;
    v_activated := FOUND;
  END IF;

  v_changelog := public.fn_handoff_changelog(p_limit, v_emit, p_actor, v_now);
  v_births := public.fn_handoff_births(p_limit, v_emit, p_actor, v_now);
  RETURN jsonb_build_object(
    'database', pg_catalog.current_database(), 'mode', CASE WHEN v_emit THEN 'emit' ELSE 'capture' END, 'ospa', v_ospa,
    'activated', v_activated, 'changelog', v_changelog, 'births', v_births,
    'more', (v_changelog ->> 'more')::boolean OR (v_births ->> 'more')::boolean OR (v_births ->> 'more_to_emit')::boolean);
END;
$$;
REVOKE ALL ON FUNCTION public.fn_governance_handoff_batch(text, integer, text) FROM PUBLIC;

ALTER TABLE public.birth_handoff_cursor OWNER TO birthgate_owner;
ALTER TABLE public.birth_handoff_gap OWNER TO birthgate_owner;
ALTER TABLE public.birth_handoff_batch OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_handoff_estate_check(regclass[], regclass[]) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_handoff_advance(text, bigint[], bigint[], integer, xid8, xid8, integer, integer, integer, boolean, text, timestamptz) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_handoff_changelog(integer, boolean, text, timestamptz) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_handoff_births(integer, boolean, text, timestamptz) OWNER TO birthgate_owner;
ALTER FUNCTION public.fn_governance_handoff_batch(text, integer, text) OWNER TO birthgate_owner;

SELECT public.fn_drift_capture_step('step-18');
