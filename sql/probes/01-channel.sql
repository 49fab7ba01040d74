-- KB-2590 §1: the execution channel — server, role, write capability.
SELECT jsonb_build_object(
  'serverVersion', current_setting('server_version'),
  'serverVersionNum', current_setting('server_version_num')::integer,
  'database', current_database(),
  'currentUser', current_user,
  'rolsuper', (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user),
  'transactionReadOnly', current_setting('transaction_read_only')
) AS doc;
