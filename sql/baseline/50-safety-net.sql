-- KB-2590 §8, KB-35E7 §8: the safety net and its BLOCK dims, as found.
--   orphan_critical_active  rows of a critical collection, active, not born in their own collection
--   phantom_real            births whose row is gone (REAL_MISSING); synthetic phantoms are counted apart
--   fs_file_no_registry     DOT files on disk with no dot_tools row (FILE_NO_REGISTRY)
--   dot_pivot_update        pivot-update DOTs that are staged-file-only / unborn / not a valid DOT
-- Every dim is computed live. Which dims block which DOT action is data (dot_action_block_policy), and
-- later dims (KB-3A66 §8 gate_drift) plug in through dot_block_dim_source without a body swap.

CREATE TABLE _recon_dot_fs_inventory (
  file_path      varchar PRIMARY KEY,
  dot_code       varchar NOT NULL,
  is_staged      boolean NOT NULL DEFAULT false,
  manifest_valid boolean NOT NULL DEFAULT true,
  checksum       varchar,
  scanned_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_recon_dot_fs_inventory_code ON _recon_dot_fs_inventory (dot_code);

CREATE TABLE _preflight_accepted_exceptions (
  dim             varchar NOT NULL,
  entity_code     varchar NOT NULL,
  collection_name varchar,
  reason          text NOT NULL,
  accepted_by     varchar NOT NULL,
  accepted_at     timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz,
  CONSTRAINT _preflight_accepted_exceptions_pkey PRIMARY KEY (dim, entity_code)
);

CREATE TABLE dot_action_block_policy (
  action text NOT NULL,
  dim    text NOT NULL,
  note   text,
  CONSTRAINT dot_action_block_policy_pkey PRIMARY KEY (action, dim)
);

-- A dim computed by a function () RETURNS TABLE (block_count bigint, detail text).
CREATE TABLE dot_block_dim_source (
  dim         text PRIMARY KEY,
  count_fn    regproc NOT NULL,
  description text
);

-- KB-3A66 §10: RP cleanup is NO-GO while any of the four dims is non-zero.
INSERT INTO dot_action_block_policy (action, dim, note) VALUES
  ('rp_cleanup', 'orphan_critical_active', 'KB-35E7 §8'),
  ('rp_cleanup', 'phantom_real',           'KB-35E7 §8'),
  ('rp_cleanup', 'fs_file_no_registry',    'KB-35E7 §8'),
  ('rp_cleanup', 'dot_pivot_update',       'KB-35E7 §8');

-- The SQL expression of a collection's entity code over alias t: its code field, or
-- '<collection>:<id>' for id-keyed families (fn_birth_registry_auto_id).
CREATE FUNCTION _fn_collection_code_expr(p_collection text, p_code_field text, p_id_field text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN p_code_field IS NOT NULL THEN format('t.%I::text', p_code_field)
              ELSE format('(%L || '':'' || t.%I::text)', p_collection, p_id_field) END
$fn$;

-- Rows of every catalogued collection that are not born in their own collection.
CREATE FUNCTION fn_birth_orphans()
RETURNS TABLE (collection_name text, entity_code text, row_id bigint, is_active boolean)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  m      record;
  v_code text;
  v_live text;
BEGIN
  FOR m IN SELECT mc.collection_name, mc.code_field, mc.id_field, mc.status_field
             FROM meta_catalog mc
            WHERE mc.birth_mode IN ('code', 'id', 'none')
              AND to_regclass(quote_ident(mc.collection_name)) IS NOT NULL
            ORDER BY mc.collection_name
  LOOP
    v_code := _fn_collection_code_expr(m.collection_name, m.code_field, m.id_field);
    v_live := CASE WHEN m.status_field IS NULL THEN 'true'
                   ELSE format('coalesce(t.%I::text, '''') NOT IN (''archived'', ''retired'', ''deleted'')', m.status_field) END;
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, %s, t.%I::bigint, %s FROM %I t
        WHERE %s IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM birth_registry b WHERE b.entity_code = %s AND b.collection_name = %L)',
      m.collection_name, v_code, m.id_field, v_live, m.collection_name, v_code, v_code, m.collection_name);
  END LOOP;
END
$fn$;

-- Births whose row no longer exists (or whose collection has no table at all).
CREATE FUNCTION fn_birth_phantoms()
RETURNS TABLE (collection_name text, entity_code text, birth_id bigint, synthetic boolean)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  m      record;
  v_code text;
BEGIN
  FOR m IN SELECT mc.collection_name, mc.code_field, mc.id_field
             FROM meta_catalog mc
            WHERE to_regclass(quote_ident(mc.collection_name)) IS NOT NULL
            ORDER BY mc.collection_name
  LOOP
    v_code := _fn_collection_code_expr(m.collection_name, m.code_field, m.id_field);
    RETURN QUERY EXECUTE format(
      'SELECT b.collection_name::text, b.entity_code::text, b.id, coalesce(b.jsonb_profile ->> ''synthetic'' = ''true'', false)
         FROM birth_registry b
        WHERE b.collection_name = %L
          AND NOT EXISTS (SELECT 1 FROM %I t WHERE %s = b.entity_code)',
      m.collection_name, m.collection_name, v_code);
  END LOOP;
  RETURN QUERY
    SELECT b.collection_name::text, b.entity_code::text, b.id, coalesce(b.jsonb_profile ->> 'synthetic' = 'true', false)
      FROM birth_registry b
     WHERE NOT EXISTS (SELECT 1 FROM meta_catalog mc
                        WHERE mc.collection_name = b.collection_name
                          AND to_regclass(quote_ident(mc.collection_name)) IS NOT NULL);
END
$fn$;

CREATE FUNCTION fn_collection_row_counts()
RETURNS TABLE (collection_name text, row_count bigint)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  m record;
BEGIN
  FOR m IN SELECT mc.collection_name FROM meta_catalog mc
            WHERE to_regclass(quote_ident(mc.collection_name)) IS NOT NULL
            ORDER BY mc.collection_name
  LOOP
    RETURN QUERY EXECUTE format('SELECT %L::text, count(*) FROM %I', m.collection_name, m.collection_name);
  END LOOP;
END
$fn$;

CREATE VIEW v_birth_orphan AS
SELECT o.collection_name,
       o.entity_code,
       o.row_id,
       mc.criticality,
       o.is_active,
       CASE WHEN mc.criticality = 'critical' AND o.is_active THEN 'CRITICAL_ACTIVE'
            WHEN mc.criticality = 'critical' THEN 'CRITICAL_INACTIVE'
            ELSE 'STANDARD' END AS orphan_class,
       other.collection_name::text AS born_in_collection,
       EXISTS (SELECT 1 FROM _preflight_accepted_exceptions e
                WHERE e.dim = 'orphan_critical_active' AND e.entity_code = o.entity_code
                  AND (e.expires_at IS NULL OR e.expires_at > now())) AS accepted_exception
  FROM fn_birth_orphans() o
  JOIN meta_catalog mc ON mc.collection_name = o.collection_name
  LEFT JOIN birth_registry other ON other.entity_code = o.entity_code;

CREATE VIEW v_birth_phantom AS
SELECT p.collection_name,
       p.entity_code,
       p.birth_id,
       CASE WHEN p.synthetic THEN 'SYNTHETIC' ELSE 'REAL_MISSING' END AS phantom_class,
       EXISTS (SELECT 1 FROM _preflight_accepted_exceptions e
                WHERE e.dim = 'phantom_real' AND e.entity_code = p.entity_code
                  AND (e.expires_at IS NULL OR e.expires_at > now())) AS accepted_exception
  FROM fn_birth_phantoms() p;

CREATE VIEW v_birth_coverage_status AS
WITH r AS (SELECT * FROM fn_collection_row_counts()),
     b AS (SELECT br.collection_name::text AS collection_name, count(*) AS n FROM birth_registry br GROUP BY 1),
     o AS (SELECT v.collection_name, count(*) AS n FROM fn_birth_orphans() v GROUP BY 1),
     p AS (SELECT v.collection_name, count(*) AS n FROM fn_birth_phantoms() v GROUP BY 1)
SELECT mc.collection_name::text AS collection_name,
       mc.birth_mode,
       mc.managed,
       mc.criticality,
       r.row_count,
       coalesce(b.n, 0) AS born_count,
       coalesce(o.n, 0) AS orphan_count,
       coalesce(p.n, 0) AS phantom_count,
       round(100.0 * (r.row_count - coalesce(o.n, 0)) / nullif(r.row_count, 0), 2) AS coverage_pct,
       CASE WHEN r.row_count IS NULL THEN 'NO_TABLE'
            WHEN coalesce(o.n, 0) = 0 AND coalesce(p.n, 0) = 0 THEN 'COVERED'
            WHEN coalesce(o.n, 0) = r.row_count THEN 'UNCOVERED'
            ELSE 'PARTIAL' END AS coverage_status
  FROM meta_catalog mc
  LEFT JOIN r ON r.collection_name = mc.collection_name
  LEFT JOIN b ON b.collection_name = mc.collection_name
  LEFT JOIN o ON o.collection_name = mc.collection_name
  LEFT JOIN p ON p.collection_name = mc.collection_name;

CREATE VIEW v_dot_fs_reconciliation AS
SELECT coalesce(i.dot_code, d.code)::text AS dot_code,
       i.file_path,
       d.id AS dot_tools_id,
       (b.id IS NOT NULL) AS born,
       CASE WHEN i.file_path IS NULL THEN 'REGISTRY_NO_FILE'
            WHEN d.id IS NULL AND i.is_staged THEN 'STAGED_FILE_ONLY'
            WHEN d.id IS NULL THEN 'FILE_NO_REGISTRY'
            ELSE 'MATCHED' END AS recon_class,
       EXISTS (SELECT 1 FROM _preflight_accepted_exceptions e
                WHERE e.dim = 'fs_file_no_registry' AND e.entity_code = coalesce(i.dot_code, d.code)
                  AND (e.expires_at IS NULL OR e.expires_at > now())) AS accepted_exception
  FROM _recon_dot_fs_inventory i
  FULL JOIN dot_tools d ON d.code = i.dot_code
  LEFT JOIN birth_registry b ON b.entity_code = coalesce(i.dot_code, d.code) AND b.collection_name = 'dot_tools';

CREATE VIEW v_dot_registry_no_file AS
SELECT r.dot_code, r.dot_tools_id, r.born
  FROM v_dot_fs_reconciliation r
 WHERE r.recon_class = 'REGISTRY_NO_FILE';

-- The pivot-update DOT programme: every DOT named dot-pivot-*, on disk or registered.
CREATE VIEW v_dot_pivot_update_status AS
WITH pivot_dots AS (
  SELECT i.dot_code::text AS dot_code FROM _recon_dot_fs_inventory i WHERE i.dot_code LIKE 'dot-pivot-%'
  UNION
  SELECT d.code::text FROM dot_tools d WHERE d.code LIKE 'dot-pivot-%'
)
SELECT s.dot_code, s.file_state, s.birth_state, s.validity,
       (s.file_state <> 'FILE_PRESENT' OR s.birth_state <> 'BORN' OR s.validity <> 'VALID_DOT') AS blocking
  FROM (
    SELECT p.dot_code,
           CASE WHEN i.file_path IS NULL THEN 'NO_FILE'
                WHEN i.is_staged THEN 'STAGED_FILE_ONLY'
                ELSE 'FILE_PRESENT' END AS file_state,
           CASE WHEN b.id IS NULL THEN 'UNBORN' ELSE 'BORN' END AS birth_state,
           CASE WHEN d.id IS NOT NULL AND coalesce(i.manifest_valid, false) THEN 'VALID_DOT'
                ELSE 'NOT_VALID_DOT' END AS validity
      FROM pivot_dots p
      LEFT JOIN _recon_dot_fs_inventory i ON i.dot_code = p.dot_code
      LEFT JOIN dot_tools d ON d.code = p.dot_code
      LEFT JOIN birth_registry b ON b.entity_code = p.dot_code AND b.collection_name = 'dot_tools'
  ) s;

CREATE FUNCTION fn_safety_block_dims()
RETURNS TABLE (dim text, block_count bigint, detail text)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  v_src record;
BEGIN
  RETURN QUERY
    WITH o AS (SELECT v.collection_name, count(*) AS n FROM v_birth_orphan v
                WHERE v.orphan_class = 'CRITICAL_ACTIVE' AND NOT v.accepted_exception
                GROUP BY v.collection_name)
    SELECT 'orphan_critical_active'::text, coalesce(sum(o.n), 0)::bigint,
           coalesce(string_agg(format('%s=%s', o.collection_name, o.n), ', ' ORDER BY o.collection_name), 'none')
      FROM o;

  RETURN QUERY
    SELECT 'phantom_real'::text,
           count(*) FILTER (WHERE v.phantom_class = 'REAL_MISSING' AND NOT v.accepted_exception),
           format('REAL_MISSING; synthetic=%s (not blocking)', count(*) FILTER (WHERE v.phantom_class = 'SYNTHETIC'))
      FROM v_birth_phantom v;

  RETURN QUERY
    SELECT 'fs_file_no_registry'::text,
           count(*) FILTER (WHERE r.recon_class = 'FILE_NO_REGISTRY' AND NOT r.accepted_exception),
           format('FILE_NO_REGISTRY; accepted exceptions=%s; registry without file=%s',
                  count(*) FILTER (WHERE r.recon_class = 'FILE_NO_REGISTRY' AND r.accepted_exception),
                  count(*) FILTER (WHERE r.recon_class = 'REGISTRY_NO_FILE'))
      FROM v_dot_fs_reconciliation r;

  RETURN QUERY
    SELECT 'dot_pivot_update'::text,
           count(*) FILTER (WHERE s.blocking),
           coalesce(string_agg(format('%s: %s / %s / %s', s.dot_code, s.file_state, s.birth_state, s.validity),
                               ', ' ORDER BY s.dot_code) FILTER (WHERE s.blocking), 'none')
      FROM v_dot_pivot_update_status s;

  FOR v_src IN SELECT src.dim, src.count_fn FROM dot_block_dim_source src ORDER BY src.dim LOOP
    RETURN QUERY EXECUTE format('SELECT %L::text, x.block_count::bigint, x.detail::text FROM %s() x',
                                v_src.dim, v_src.count_fn);
  END LOOP;
END
$fn$;

-- RAISEs BG423 when any dim that dot_action_block_policy maps to p_action is non-zero; a mapped dim
-- that no source computes also refuses (fail closed). Otherwise returns every dim.
CREATE FUNCTION fn_assert_safe_for_dot_action(p_action text)
RETURNS TABLE (dim text, block_count bigint, blocking boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_dims    jsonb;
  v_refusal text;
BEGIN
  SELECT coalesce(jsonb_agg(jsonb_build_object(
             'dim', coalesce(d.dim, p.dim),
             'block_count', d.block_count,
             'blocking', p.dim IS NOT NULL AND (d.dim IS NULL OR d.block_count > 0))
           ORDER BY coalesce(d.dim, p.dim)), '[]'::jsonb)
    INTO v_dims
    FROM fn_safety_block_dims() d
    FULL JOIN (SELECT pol.dim FROM dot_action_block_policy pol WHERE pol.action = p_action) p
      ON p.dim = d.dim;

  SELECT string_agg(format('%s=%s', x.dim, coalesce(x.block_count::text, 'not computed')), ', ' ORDER BY x.dim)
    INTO v_refusal
    FROM jsonb_to_recordset(v_dims) AS x(dim text, block_count bigint, blocking boolean)
   WHERE x.blocking;

  IF v_refusal IS NOT NULL THEN
    RAISE EXCEPTION '[SAFETY] % refused by BLOCK dims: %', p_action, v_refusal
      USING ERRCODE = 'BG423', HINT = 'SELECT * FROM fn_safety_block_dims() shows the detail of each dim';
  END IF;

  RETURN QUERY
    SELECT x.dim, x.block_count, x.blocking
      FROM jsonb_to_recordset(v_dims) AS x(dim text, block_count bigint, blocking boolean);
END
$fn$;

-- KB-35E7 §4.5: the retire safety check exists; the retire transition and a status vocabulary do not.
-- One row per check; a birth may be retired only when every check passed.
CREATE FUNCTION fn_retire_gate_check(p_collection text, p_entity_code text)
RETURNS TABLE (check_name text, passed boolean, detail text)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  v_birth_id   bigint;
  v_status     text;
  v_code_field text;
  v_id_field   text;
  v_has_row    boolean := false;
  v_children   bigint;
BEGIN
  SELECT b.id, b.status INTO v_birth_id, v_status
    FROM birth_registry b WHERE b.entity_code = p_entity_code AND b.collection_name = p_collection;
  check_name := 'birth_exists'; passed := v_birth_id IS NOT NULL;
  detail := coalesce('birth id ' || v_birth_id, format('no birth of %s in %s', p_entity_code, p_collection));
  RETURN NEXT;

  check_name := 'status_born'; passed := coalesce(v_status = 'born', false);
  detail := format('status %s', coalesce(v_status, '<none>'));
  RETURN NEXT;

  SELECT mc.code_field, mc.id_field INTO v_code_field, v_id_field
    FROM meta_catalog mc WHERE mc.collection_name = p_collection;
  IF FOUND AND to_regclass(quote_ident(p_collection)) IS NOT NULL THEN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I t WHERE %s = $1)', p_collection,
                   _fn_collection_code_expr(p_collection, v_code_field, v_id_field))
      INTO v_has_row USING p_entity_code;
  END IF;
  check_name := 'row_absent'; passed := NOT v_has_row;
  detail := CASE WHEN v_has_row THEN 'the row still exists; only a phantom may be retired' ELSE 'no live row' END;
  RETURN NEXT;

  SELECT count(*) INTO v_children FROM birth_registry b WHERE b.parent_code = p_entity_code;
  check_name := 'no_children'; passed := v_children = 0;
  detail := format('%s births name it as parent', v_children);
  RETURN NEXT;
END
$fn$;
