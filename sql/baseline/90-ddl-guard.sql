-- KB-2590 §9: a DDL guard is already live — an event trigger that warns
-- "[TRIGGER-GUARD] DDL detected: <command tag> on <object>" on trigger/function/table DDL. Detect
-- only: it never blocks. Installed last so the baseline's own DDL does not trip it. Event triggers
-- must belong to a superuser, so these two stay with the installing role.
CREATE FUNCTION fn_trigger_guard_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    RAISE WARNING '[TRIGGER-GUARD] DDL detected: % on %', r.command_tag, coalesce(r.object_identity, r.object_type);
  END LOOP;
END
$fn$;

CREATE FUNCTION fn_trigger_guard_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() WHERE original LOOP
    RAISE WARNING '[TRIGGER-GUARD] DDL detected: % on %', TG_TAG, coalesce(r.object_identity, r.object_type);
  END LOOP;
END
$fn$;

CREATE EVENT TRIGGER trg_guard_trigger_ddl ON ddl_command_end
  WHEN TAG IN ('CREATE TRIGGER', 'ALTER TRIGGER', 'CREATE FUNCTION', 'ALTER FUNCTION', 'CREATE PROCEDURE',
               'ALTER PROCEDURE', 'ALTER TABLE', 'CREATE RULE')
  EXECUTE FUNCTION fn_trigger_guard_ddl();

CREATE EVENT TRIGGER trg_guard_trigger_drop ON sql_drop
  WHEN TAG IN ('DROP TRIGGER', 'DROP FUNCTION', 'DROP PROCEDURE', 'DROP RULE')
  EXECUTE FUNCTION fn_trigger_guard_drop();
