-- KB-7D57 step 12 holds: a logged 'step-12@…' baseline set with functions, trigger sets and the birth
-- bindings; the baselines are append-only; the 3 permit views exist.
SELECT (to_regclass('public.birth_drift_baseline') IS NOT NULL
        AND to_regclass('public.birth_drift_rebaseline') IS NOT NULL
        AND to_regclass('public.v_permit_active') IS NOT NULL
        AND to_regclass('public.v_permit_stuck') IS NOT NULL
        AND to_regclass('public.v_permit_summary') IS NOT NULL
        AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgname = 'trg_drift_baseline_append_only' AND tgenabled = 'A')
        AND CASE WHEN to_regclass('public.birth_drift_baseline') IS NULL THEN false ELSE
              (xpath('/row/n/text()', query_to_xml(
                $q$SELECT count(DISTINCT kind) AS n FROM public.birth_drift_baseline WHERE baseline_set LIKE 'step-12@%'
                     AND kind IN ('function', 'trigger_set', 'birth_bindings')$q$,
                false, true, '')))[1]::text::int = 3 END) AS ok,
       format('baseline table=%s views=%s/%s/%s', to_regclass('public.birth_drift_baseline') IS NOT NULL,
              to_regclass('public.v_permit_active') IS NOT NULL, to_regclass('public.v_permit_stuck') IS NOT NULL,
              to_regclass('public.v_permit_summary') IS NOT NULL) AS detail;
