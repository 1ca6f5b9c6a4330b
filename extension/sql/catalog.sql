-- The catalog, kept on PROD: the environments, the modules and what they require, the shop data
-- never synchronized, and the operators' addresses. Every environment also keeps its own
-- tracking state (tracking.sql).

-- Names people give environments and modules: any printable text up to 63 bytes.
CREATE OR REPLACE FUNCTION envsync.valid_name(name text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT octet_length(name) BETWEEN 1 AND 63 AND name !~ '[[:cntrl:]]'
$$;
COMMENT ON FUNCTION envsync.valid_name(text) IS 'Whether a text can name an environment or a module';

CREATE OR REPLACE FUNCTION envsync.require_valid_name(what text, name text) RETURNS void
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
CREATE OR REPLACE FUNCTION envsync.valid_email(email text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT email ~ '^[^@[:space:][:cntrl:]<>,;]+@[^@[:space:][:cntrl:]<>,;]+$'
$$;
COMMENT ON FUNCTION envsync.valid_email(text) IS 'Whether a text is one plain e-mail address';

CREATE TABLE IF NOT EXISTS envsync.environments (
    name        text PRIMARY KEY
                CONSTRAINT environment_name_format CHECK (envsync.valid_name(name)),
    server      name,          -- postgres_fdw foreign server reaching it; NULL: this database
    link_schema name UNIQUE,   -- local schema of the foreign tables that reach it
    added_at    timestamptz NOT NULL DEFAULT now(),
    added_by    name NOT NULL DEFAULT current_user,
    CHECK ((server IS NULL) = (link_schema IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS environments_one_local ON envsync.environments ((server IS NULL))
    WHERE server IS NULL;
COMMENT ON TABLE envsync.environments IS
    'Environments envsync synchronizes; the one without a server is this database (prod on the production database)';
COMMENT ON COLUMN envsync.environments.name IS 'The environment''s name (prod, test, ...)';
COMMENT ON COLUMN envsync.environments.server IS 'The postgres_fdw foreign server reaching it; NULL for this database';
COMMENT ON COLUMN envsync.environments.link_schema IS 'The schema of the foreign tables reaching its envsync';
COMMENT ON COLUMN envsync.environments.added_at IS 'When it was registered';
COMMENT ON COLUMN envsync.environments.added_by IS 'Who registered it';

CREATE TABLE IF NOT EXISTS envsync.modules (
    name       text PRIMARY KEY
               CONSTRAINT module_name_format CHECK (envsync.valid_name(name)),
    root_table regclass,      -- scope picked per run: these rows by key, and the rows referencing them
    added_at   timestamptz NOT NULL DEFAULT now(),
    added_by   name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE envsync.modules IS 'Content modules a synchronization can include (CMS, sliders, gallery, ...)';
COMMENT ON COLUMN envsync.modules.name IS 'The module''s name';
COMMENT ON COLUMN envsync.modules.root_table IS 'The table whose records a comparison may pick (gallery folders), NULL if none';
COMMENT ON COLUMN envsync.modules.added_at IS 'When it was defined';
COMMENT ON COLUMN envsync.modules.added_by IS 'Who defined it';

CREATE TABLE IF NOT EXISTS envsync.module_requires (
    module   text NOT NULL REFERENCES envsync.modules ON DELETE CASCADE,
    requires text NOT NULL REFERENCES envsync.modules,
    PRIMARY KEY (module, requires)
);
COMMENT ON TABLE envsync.module_requires IS 'Modules that are always synchronized with a module (mobile_app requires gallery)';
COMMENT ON COLUMN envsync.module_requires.module IS 'The module';
COMMENT ON COLUMN envsync.module_requires.requires IS 'A module synchronized whenever it is';

-- Tables that hold shop data never synchronized between environments, matched by table name in
-- any schema. sync_add_module refuses them.
CREATE TABLE IF NOT EXISTS envsync.never_synced (
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
    ('translations',   'translations')) AS builtin_list (t, r)
ON CONFLICT (table_name) DO NOTHING;
COMMENT ON TABLE envsync.never_synced IS
    'Shop data that is never synchronized (users, orders, ...), by table name; system settings are synced only through a row filter';
COMMENT ON COLUMN envsync.never_synced.table_name IS 'A table name, in any schema; % stands for any characters (''%translation'')';
COMMENT ON COLUMN envsync.never_synced.reason IS 'What the table holds, for the error message';
COMMENT ON COLUMN envsync.never_synced.builtin IS 'Shipped with envsync rather than added with sync_deny_table';

CREATE TABLE IF NOT EXISTS envsync.operators (
    role_name name PRIMARY KEY,
    email     text NOT NULL
              CONSTRAINT operator_email_format CHECK (envsync.valid_email(email))
);
COMMENT ON TABLE envsync.operators IS 'E-mail address for the notifications of each role that starts comparisons and synchronizations';
COMMENT ON COLUMN envsync.operators.role_name IS 'The role (its name as stored in pg_roles)';
COMMENT ON COLUMN envsync.operators.email IS 'Where its notifications go';

CREATE OR REPLACE FUNCTION sync_set_operator(role_name regrole, email text) RETURNS void
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

CREATE OR REPLACE FUNCTION sync_remove_operator(role_name regrole) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM envsync.operators o WHERE o.role_name = (SELECT r.rolname FROM pg_roles r WHERE r.oid = $1);
$$;
COMMENT ON FUNCTION sync_remove_operator(regrole) IS 'Stops the e-mails to a role';

-- Whether a table's name (without its schema) is an entry of the never-synced list: the same
-- name, where the entry's % stands for any run of characters (nothing else is a wildcard:
-- order_items is no pattern).
CREATE OR REPLACE FUNCTION envsync.never_synced_match(relname name, entry name) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT relname::text LIKE replace(replace(entry::text, '\', '\\'), '_', '\_')
$$;
COMMENT ON FUNCTION envsync.never_synced_match(name, name) IS
    'Whether a table name is a never-synced entry: the same name, % in the entry standing for any characters';

CREATE OR REPLACE FUNCTION sync_deny_table(table_name name, reason text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO envsync.never_synced (table_name, reason) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT never_synced_pkey DO UPDATE SET reason = EXCLUDED.reason;
$$;
COMMENT ON FUNCTION sync_deny_table(name, text) IS
    'Adds a table name, or a pattern (% for any characters: ''%translation''), to the shop data that is never synchronized';
