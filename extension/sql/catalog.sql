-- The catalog: environments, modules and their tables, operators. Kept on PROD; every
-- environment also keeps envsync.tracked_tables for its own change tracking (tracking.sql).

-- Names people give environments and modules: any printable text up to 63 bytes.
CREATE FUNCTION envsync.valid_name(name text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT octet_length(name) BETWEEN 1 AND 63 AND name !~ '[[:cntrl:]]'
$$;
COMMENT ON FUNCTION envsync.valid_name(text) IS 'Whether a text can name an environment or a module';

CREATE FUNCTION envsync.require_valid_name(what text, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR NOT envsync.valid_name(name) THEN
        RAISE EXCEPTION 'invalid % name "%"', what, name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use 1 to 63 bytes of printable characters.';
    END IF;
END
$$;
COMMENT ON FUNCTION envsync.require_valid_name(text, text) IS 'Refuses a name that cannot name an environment or a module';

-- One e-mail address, as the orchestrator will send to it.
CREATE FUNCTION envsync.valid_email(email text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT email ~ '^[^@[:space:][:cntrl:]<>,;]+@[^@[:space:][:cntrl:]<>,;]+$'
$$;
COMMENT ON FUNCTION envsync.valid_email(text) IS 'Whether a text is one plain e-mail address';

CREATE TABLE envsync.environments (
    name        text PRIMARY KEY
                CONSTRAINT environment_name_format CHECK (envsync.valid_name(name)),
    server      name,          -- postgres_fdw foreign server reaching it; NULL: this database
    link_schema name UNIQUE,   -- local schema of the foreign tables that reach it
    added_at    timestamptz NOT NULL DEFAULT now(),
    added_by    name NOT NULL DEFAULT current_user,
    CHECK ((server IS NULL) = (link_schema IS NULL))
);
CREATE UNIQUE INDEX environments_one_local ON envsync.environments ((server IS NULL))
    WHERE server IS NULL;
COMMENT ON TABLE envsync.environments IS
    'Environments envsync synchronizes; the one without a server is this database (prod on the production database)';

CREATE TABLE envsync.modules (
    name       text PRIMARY KEY
               CONSTRAINT module_name_format CHECK (envsync.valid_name(name)),
    root_table regclass,      -- scope picked per run: these rows by key, and the rows referencing them
    added_at   timestamptz NOT NULL DEFAULT now(),
    added_by   name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE envsync.modules IS 'Content modules a synchronization can include (CMS, sliders, gallery, ...)';

CREATE TABLE envsync.module_requires (
    module   text NOT NULL REFERENCES envsync.modules ON DELETE CASCADE,
    requires text NOT NULL REFERENCES envsync.modules,
    PRIMARY KEY (module, requires)
);
COMMENT ON TABLE envsync.module_requires IS 'Modules that are always synchronized with a module (mobile_app requires gallery)';

-- Tables that hold shop data never synchronized between environments, matched by table name in
-- any schema. sync_add_module refuses them.
CREATE TABLE envsync.never_synced (
    table_name name PRIMARY KEY,
    reason     text NOT NULL,
    builtin    boolean NOT NULL DEFAULT false   -- shipped with envsync (not dumped by pg_dump)
);
INSERT INTO envsync.never_synced (table_name, reason, builtin)
SELECT t, r, true FROM (VALUES
    ('users',          'users'),
    ('orders',         'orders'),
    ('order_items',    'orders'),
    ('reviews',        'reviews'),
    ('promo_codes',    'promotion codes'),
    ('campaigns',      'campaigns'),
    ('titles',         'titles'),
    ('payment_types',  'payment types'),
    ('delivery_types', 'delivery types'),
    ('seo_settings',   'SEO settings'),
    ('translations',   'translations')) AS builtin_list (t, r);
COMMENT ON TABLE envsync.never_synced IS
    'Shop data that is never synchronized (users, orders, ...), by table name; system settings are synced only through a row filter';

CREATE TABLE envsync.operators (
    role_name name PRIMARY KEY,
    email     text NOT NULL
              CONSTRAINT operator_email_format CHECK (envsync.valid_email(email))
);
COMMENT ON TABLE envsync.operators IS 'E-mail address for the notifications of each role that starts comparisons and synchronizations';
