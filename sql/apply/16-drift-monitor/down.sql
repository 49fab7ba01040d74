-- Rollback of step 16: unplug the dim first (count_fn is a regproc, it holds no dependency).
DELETE FROM dot_action_block_policy WHERE action = 'birth_admit' AND dim = 'gate_drift';
DELETE FROM dot_block_dim_source WHERE dim = 'gate_drift';
DROP FUNCTION IF EXISTS fn_admission_preflight(text, text);
DROP FUNCTION IF EXISTS fn_admission_assert_safe(text);
DROP FUNCTION IF EXISTS fn_gate_drift_dim();
DROP VIEW IF EXISTS v_gate_drift;
DROP FUNCTION IF EXISTS fn_drift_check();
