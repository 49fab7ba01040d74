-- KB-2590 §6: the layered IU gate (BEFORE layer 1, DEFERRABLE INITIALLY DEFERRED layer 2) and the
-- gate-token ledger it is paired with.
SELECT jsonb_build_object(
  'layer1', (SELECT jsonb_build_object(
                 'trigger', t.tgname,
                 'function', t.tgfoid::regproc::text,
                 'before', t.tgtype & 2 = 2)
               FROM pg_trigger t
              WHERE t.tgrelid = to_regclass('information_unit') AND t.tgfoid = to_regproc('fn_iu_birth_gate_layer1')
              LIMIT 1),
  'layer2', (SELECT jsonb_build_object(
                 'trigger', t.tgname,
                 'function', t.tgfoid::regproc::text,
                 'constraintTrigger', t.tgconstraint <> 0,
                 'deferrable', t.tgdeferrable,
                 'initiallyDeferred', t.tginitdeferred)
               FROM pg_trigger t
              WHERE t.tgrelid = to_regclass('information_unit') AND t.tgname = 'trg_iu_birth_gate_layer2'),
  'ledger', jsonb_build_object(
    'fn_iu_gate_open', to_regprocedure('fn_iu_gate_open(text,text,text,text,integer)') IS NOT NULL,
    'iu_gate_transition', to_regclass('iu_gate_transition') IS NOT NULL,
    'fn_dot_iu_command_log', to_regproc('fn_dot_iu_command_log') IS NOT NULL)
) AS doc;
