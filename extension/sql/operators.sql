-- Operators: who gets the e-mails of the comparisons and synchronizations they start.

CREATE FUNCTION sync_set_operator(role_name regrole, email text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF email IS NULL OR email !~ '^[^@[:space:][:cntrl:]<>,;]+@[^@[:space:][:cntrl:]<>,;]+$' THEN
        RAISE EXCEPTION 'invalid e-mail address "%"', email
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Give one address, like name@example.com.';
    END IF;
    INSERT INTO envsync.operators (role_name, email) VALUES (role_name::text, email)
    ON CONFLICT ON CONSTRAINT operators_pkey DO UPDATE SET email = EXCLUDED.email;
END
$$;
COMMENT ON FUNCTION sync_set_operator(regrole, text) IS 'Sets the e-mail address of a role that starts synchronizations';

CREATE FUNCTION sync_remove_operator(role_name regrole) RETURNS void
LANGUAGE sql SET search_path = pg_catalog AS $$
    DELETE FROM envsync.operators o WHERE o.role_name = $1::text;
$$;
COMMENT ON FUNCTION sync_remove_operator(regrole) IS 'Stops the e-mails to a role';
