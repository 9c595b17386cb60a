-- The cap is spent, not reserved: each judge call settles its actual cost as soon as it returns
-- (its reservation returned at once), so the cap fills with spend rather than with worst cases
-- held until a page commits. `pending_usd` is the part of `spent_usd` whose scores are not
-- stored yet: the page that stores them clears it in its own transaction; a page that fails
-- takes it back out of `spent_usd`, and a run that died with some pending (SIGKILL between the
-- call and the commit) is reconciled by the next run the same way. So once pages commit,
-- `spent_usd` is exactly the cost of the stored scores.
ALTER TABLE assay.spend ADD COLUMN pending_usd double precision NOT NULL DEFAULT 0;
ALTER TABLE assay.run_spend ADD COLUMN pending_usd double precision NOT NULL DEFAULT 0;

-- One round trip per answered call: the run row, then the day row (the order reserve_spend
-- locks them in), in one autocommit statement.
CREATE FUNCTION assay.settle_call(
    p_run_id uuid, p_deployment text, p_day date, p_reserved double precision,
    p_actual double precision
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE assay.run_spend
    SET reserved_usd = greatest(reserved_usd - p_reserved, 0),
        spent_usd = spent_usd + p_actual, pending_usd = pending_usd + p_actual
    WHERE run_id = p_run_id;
    UPDATE assay.spend
    SET reserved_usd = greatest(reserved_usd - p_reserved, 0),
        spent_usd = spent_usd + p_actual, pending_usd = pending_usd + p_actual
    WHERE deployment = p_deployment AND day = p_day;
END
$$;

-- reserve_spend, with the choice not to count a refusal: a call that waits for the run's calls
-- in flight to settle and asks again is one refusal at most, not one per try.
CREATE FUNCTION assay.try_reserve_spend(
    p_run_id uuid, p_deployment text, p_day date, p_amount double precision,
    p_max_calls bigint, p_max_run double precision, p_max_day double precision,
    p_count_refusal boolean
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
        UPDATE assay.run_spend SET refused = refused + p_count_refusal::int
        WHERE run_id = p_run_id;
        RETURN false;
    END IF;
    UPDATE assay.spend
    SET reserved_usd = reserved_usd + p_amount, calls = calls + 1
    WHERE deployment = p_deployment AND day = p_day
      AND (p_max_day IS NULL OR spent_usd + reserved_usd + p_amount <= p_max_day + 1e-12);
    IF NOT FOUND THEN
        UPDATE assay.run_spend
        SET reserved_usd = reserved_usd - p_amount, calls = calls - 1,
            refused = refused + p_count_refusal::int
        WHERE run_id = p_run_id;
        RETURN false;
    END IF;
    RETURN true;
END
$$;
