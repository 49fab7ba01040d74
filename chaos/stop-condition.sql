-- The chaos harness's stop-condition: one more BLOCK dim of the admission (step 16's birth_admission_dim),
-- soft (hard = false), so an operator's break-glass may admit past it, as DESIGN §4 allows for a BLOCK
-- dim. The harness raises it for a while and clears it by writing one row: data, not DDL, so the dim
-- moves without the catalog moving (the drift watch stays clean and the fingerprint unchanged).
-- Installed once in the chaos world's template, before its baseline is taken; never in an estate.
CREATE TABLE public.chaos_stop_condition (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  active    boolean NOT NULL DEFAULT false,
  reason    text,
  since     timestamptz
);
INSERT INTO public.chaos_stop_condition DEFAULT VALUES;
REVOKE ALL ON TABLE public.chaos_stop_condition FROM PUBLIC;
-- fn_admission_dims (SECURITY DEFINER, birthgate_owner) computes the dim with its owner's rights.
GRANT SELECT ON TABLE public.chaos_stop_condition TO birthgate_owner;

-- Trusted like every dim's function: owned by birthgate_owner, in public (fn_admission_dims refuses others).
CREATE FUNCTION public.fn_dim_chaos_stop_condition()
RETURNS TABLE (block_count bigint, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN c.active THEN 1 ELSE 0 END::bigint,
         CASE WHEN c.active THEN pg_catalog.format('stop-condition injected by the chaos harness since %s: %s', c.since, c.reason) ELSE 'none' END
    FROM public.chaos_stop_condition c WHERE c.singleton
$$;
REVOKE ALL ON FUNCTION public.fn_dim_chaos_stop_condition() FROM PUBLIC;
ALTER FUNCTION public.fn_dim_chaos_stop_condition() OWNER TO birthgate_owner;

INSERT INTO public.birth_admission_dim (dim, count_fn, hard, description)
VALUES ('chaos_stop_condition', 'public.fn_dim_chaos_stop_condition()', false,
        'chaos harness: a stop-condition injected for a while (soft: break-glass may override it)');
