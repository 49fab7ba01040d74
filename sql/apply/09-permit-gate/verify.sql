-- KB-7D57 step 9 holds: trg_permit_gate_dot_tools is a BEFORE INSERT row trigger on dot_tools
-- calling fn_dot_tools_permit_gate, ENABLE ALWAYS (tgenabled = 'A'), sorting after code generation.
SELECT coalesce(bool_and(t.tgenabled = 'A' AND t.tgfoid = to_regprocedure('public.fn_dot_tools_permit_gate()')
                         AND (t.tgtype & 2) <> 0 AND (t.tgtype & 4) <> 0 AND (t.tgtype & 1) <> 0
                         AND t.tgname > 'trg_auto_code_dot_tools'), false) AS ok,
       coalesce(string_agg(format('%s enabled=%s def=%s', t.tgname, t.tgenabled, pg_get_triggerdef(t.oid)), '; '),
                'trg_permit_gate_dot_tools absent') AS detail
FROM pg_trigger t
WHERE t.tgrelid = 'public.dot_tools'::regclass AND t.tgname = 'trg_permit_gate_dot_tools';
