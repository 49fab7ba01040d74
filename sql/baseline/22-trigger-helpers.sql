-- Ordinary housekeeping trigger functions of the estate (audit, naming, notification). They make the
-- 13-trigger set of dot_tools (KB-2590 §5) real rather than padding.

-- Registry audit: every change to a registry family lands in registry_changelog, the CDC tail source
-- of the governance handoff (KB-2590 §7).
CREATE FUNCTION fn_registry_changelog() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_field text;
  v_new   jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
  v_old   jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
BEGIN
  SELECT mc.code_field INTO v_field FROM meta_catalog mc WHERE mc.collection_name = TG_TABLE_NAME;
  INSERT INTO registry_changelog (table_name, entity_code, operation, actor, diff)
  VALUES (TG_TABLE_NAME, coalesce(v_new, v_old) ->> coalesce(v_field, 'code'), TG_OP, current_user,
          jsonb_build_object('new', v_new, 'old', v_old));
  RETURN NULL;
END
$fn$;

CREATE FUNCTION fn_normalize_name() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.name := btrim(regexp_replace(NEW.name, '\s+', ' ', 'g'));
  RETURN NEW;
END
$fn$;

CREATE FUNCTION fn_set_created_by() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.created_by := coalesce(NEW.created_by, current_user);
  RETURN NEW;
END
$fn$;

CREATE FUNCTION fn_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('birthgate_' || TG_TABLE_NAME, coalesce(to_jsonb(NEW) ->> 'code', ''));
  RETURN NULL;
END
$fn$;
