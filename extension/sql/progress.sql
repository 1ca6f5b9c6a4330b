-- Progress of a long operation, for psql users and the admin UI: a NOTICE "step N of M: what",
-- SQLSTATE EV100, whose DETAIL is a JSON object (operation, step, steps, what, and more).
CREATE OR REPLACE FUNCTION envsync.report_progress(operation text, step bigint, steps bigint, what text,
                                                   more jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE NOTICE 'step % of %: %', step, steps, what
        USING ERRCODE = 'EV100',
              DETAIL = jsonb_build_object('operation', operation, 'step', step, 'steps', steps, 'what', what)
                       || coalesce(more, '{}');
END
$$;
COMMENT ON FUNCTION envsync.report_progress(text, bigint, bigint, text, jsonb) IS
    'Reports a step of a comparison or synchronization as a NOTICE (SQLSTATE EV100, JSON detail)';
