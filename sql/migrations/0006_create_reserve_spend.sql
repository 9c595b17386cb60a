-- One round trip per reservation: check every cap and take the reservation inside the server,
-- in a fixed lock order (the run's row, then the day's row), as its own transaction.
CREATE FUNCTION assay.reserve_spend(
    p_run_id uuid, p_deployment text, p_day date, p_amount double precision,
    p_max_calls bigint, p_max_run double precision, p_max_day double precision
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO assay.spend (deployment, day) VALUES (p_deployment, p_day)
    ON CONFLICT (deployment, day) DO NOTHING;
    UPDATE assay.run_spend
    SET reserved_usd = reserved_usd + p_amount, calls = calls + 1
    WHERE run_id = p_run_id
      AND (p_max_calls IS NULL OR calls + 1 <= p_max_calls)
      AND (p_max_run IS NULL OR spent_usd + reserved_usd + p_amount <= p_max_run + 1e-12);
    IF NOT FOUND THEN
        UPDATE assay.run_spend SET refused = refused + 1 WHERE run_id = p_run_id;
        RETURN false;
    END IF;
    UPDATE assay.spend
    SET reserved_usd = reserved_usd + p_amount, calls = calls + 1
    WHERE deployment = p_deployment AND day = p_day
      AND (p_max_day IS NULL OR spent_usd + reserved_usd + p_amount <= p_max_day + 1e-12);
    IF NOT FOUND THEN
        UPDATE assay.run_spend
        SET reserved_usd = reserved_usd - p_amount, calls = calls - 1, refused = refused + 1
        WHERE run_id = p_run_id;
        RETURN false;
    END IF;
    RETURN true;
END
$$;
