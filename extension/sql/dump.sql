-- pg_dump keeps envsync's configuration and tracking state with the database's data.
SELECT pg_catalog.pg_extension_config_dump('envsync.environments', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.modules', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.module_requires', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.never_synced', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('envsync.operators', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.tracked_tables', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.tracked_tables_table_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.row_log', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.link_roles', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.module_tables', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.environment_tables', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('envsync.outbox_id_seq', '');
