-- KB-2590 §8: safety-net objects, the live BLOCK dims, and the gate's GUCs (unset = clean).
SELECT jsonb_build_object(
  'objects', (SELECT jsonb_object_agg(o.name, o.present ORDER BY o.name) FROM (
      SELECT n AS name, to_regclass(n) IS NOT NULL AS present
        FROM unnest(ARRAY['v_birth_orphan', 'v_birth_phantom', 'v_birth_coverage_status', '_recon_dot_fs_inventory',
                          'v_dot_fs_reconciliation', 'v_dot_registry_no_file', 'v_dot_pivot_update_status',
                          '_preflight_accepted_exceptions', 'dot_action_block_policy']) AS n
      UNION ALL
      SELECT n, to_regproc(n) IS NOT NULL
        FROM unnest(ARRAY['fn_assert_safe_for_dot_action', 'fn_safety_block_dims', 'fn_retire_gate_check']) AS n) o),
  'blockDims', (SELECT coalesce(jsonb_agg(jsonb_build_object('dim', d.dim, 'count', d.block_count, 'detail', d.detail)
                                          ORDER BY d.dim), '[]'::jsonb)
                  FROM fn_safety_block_dims() d),
  'phantomSynthetic', (SELECT count(*) FROM v_birth_phantom p WHERE p.phantom_class = 'SYNTHETIC'),
  'rpCleanupPolicy', (SELECT coalesce(jsonb_agg(p.dim ORDER BY p.dim), '[]'::jsonb)
                        FROM dot_action_block_policy p WHERE p.action = 'rp_cleanup'),
  'gucs', jsonb_build_object(
    'app.bypass_birth_gate', nullif(current_setting('app.bypass_birth_gate', true), ''),
    'app.birth_gate_mode', nullif(current_setting('app.birth_gate_mode', true), ''))
) AS doc;
