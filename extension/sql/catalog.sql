-- The catalog: environments, modules and their tables, operators. Kept on PROD; every
-- environment also keeps envsync.tracked_tables for its own change tracking (tracking.sql).

CREATE TABLE envsync.environments (
    name        text PRIMARY KEY
                CONSTRAINT environment_name_format CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
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
               CONSTRAINT module_name_format CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
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
              CONSTRAINT operator_email_format CHECK (email ~ '^[^@[:space:][:cntrl:]<>,;]+@[^@[:space:][:cntrl:]<>,;]+$')
);
COMMENT ON TABLE envsync.operators IS 'E-mail address for the notifications of each role that starts comparisons and synchronizations';
