-- One body for the cap check: the old entry point of migration 0006 (a worker not yet upgraded
-- still calls it) becomes try_reserve_spend (migration 0019) counting its refusals, instead of
-- a second copy of the same checks.
CREATE OR REPLACE FUNCTION assay.reserve_spend(
    p_run_id uuid, p_deployment text, p_day date, p_amount double precision,
    p_max_calls bigint, p_max_run double precision, p_max_day double precision
) RETURNS boolean LANGUAGE sql AS $$
    SELECT assay.try_reserve_spend(p_run_id, p_deployment, p_day, p_amount, p_max_calls,
                                   p_max_run, p_max_day, true)
$$;
