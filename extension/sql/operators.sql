-- Operators: who gets the e-mails of the comparisons and synchronizations they start.

CREATE FUNCTION sync_set_operator(role_name regrole, email text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF email IS NULL OR NOT envsync.valid_email(email) THEN
        RAISE EXCEPTION 'invalid e-mail address "%"', email
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Give one address, like name@example.com.';
    END IF;
    INSERT INTO envsync.operators (role_name, email)
    VALUES ((SELECT r.rolname FROM pg_roles r WHERE r.oid = role_name), email)
    ON CONFLICT ON CONSTRAINT operators_pkey DO UPDATE SET email = EXCLUDED.email;
END
$$;
COMMENT ON FUNCTION sync_set_operator(regrole, text) IS 'Sets the e-mail address of a role that starts synchronizations';

CREATE FUNCTION sync_remove_operator(role_name regrole) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM envsync.operators o WHERE o.role_name = (SELECT r.rolname FROM pg_roles r WHERE r.oid = $1);
$$;
COMMENT ON FUNCTION sync_remove_operator(regrole) IS 'Stops the e-mails to a role';
