-- The catalog on PROD, as test/setup_shop.sh configures it (pgTAP; run with pg_prove on PROD).
BEGIN;
SELECT plan(39);

SELECT has_schema('envsync');
SELECT has_function('sync_add_environment', ARRAY['text', 'text']);
SELECT has_function('sync_remove_environment', ARRAY['text']);
SELECT has_function('sync_add_module', ARRAY['text', 'regclass[]', 'text[]']);
SELECT has_function('sync_set_row_filter', ARRAY['regclass', 'name', 'text']);
SELECT has_function('sync_set_module_root', ARRAY['text', 'regclass']);
SELECT has_function('sync_set_operator', ARRAY['regrole', 'text']);
SELECT has_function('sync_grant_link', ARRAY['regrole', 'regclass[]']);
SELECT has_view('envsync', 'synced_tables', 'the modules are readable by an admin UI');
SELECT has_view('envsync', 'tracked_changes', 'tracked changes are readable by an admin UI');
SELECT has_table('envsync', 'outbox', 'e-mails are queued in an outbox');

SELECT is((SELECT string_agg(name || ':' || coalesce(server, 'local'), ', ' ORDER BY name) FROM envsync.environments),
          'prod:local, test:test_server', 'prod is this database, test is reached through test_server');
SELECT set_eq(
    $$SELECT module, table_name::text FROM envsync.synced_tables$$,
    $$VALUES ('cms', 'shop.cms_pages'), ('cms', 'shop.cms_blocks'),
             ('sliders', 'shop.sliders'), ('sliders', 'shop.slides'),
             ('gallery', 'shop.gallery_folders'), ('gallery', 'shop.gallery_files'),
             ('menus', 'shop.menus'), ('menus', 'shop.menu_items'),
             ('catalogue', 'shop.categories'), ('catalogue', 'shop.products'),
             ('catalogue', 'shop.product_categories'), ('mobile_app', 'shop.system_settings')$$,
    'each module holds its tables');
SELECT is((SELECT module_requires FROM envsync.synced_tables WHERE module = 'mobile_app'),
          ARRAY['gallery'], 'mobile_app requires gallery');
SELECT is((SELECT table_name::text FROM envsync.synced_tables WHERE module = 'gallery' AND is_root),
          'shop.gallery_folders', 'gallery folders are picked per run');
SELECT is((SELECT filter_column || ' LIKE ' || filter_pattern FROM envsync.synced_tables
            WHERE table_name = 'shop.system_settings'::regclass),
          'key LIKE mobile_app.%', 'only the mobile app settings are synced');
SELECT is_empty($$SELECT table_name FROM envsync.synced_tables WHERE tracked_in <> ARRAY['prod', 'test']$$,
                'every synced table is tracked in prod and in test');
SELECT is((SELECT count(*)::int FROM pg_trigger t JOIN envsync.tracked_tables tt ON tt.relid = t.tgrelid
            WHERE t.tgname IN ('envsync_track', 'envsync_track_truncate') AND t.tgenabled = 'A'),
          24, 'every synced table has both tracking triggers, always enabled');
SELECT is_empty($$SELECT t.tgrelid::regclass FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                   JOIN envsync.never_synced n ON n.table_name = c.relname
                  WHERE t.tgname LIKE 'envsync%'$$,
                'no never-synced table is tracked');

-- Never synchronized: users, orders, reviews, promo codes, campaigns, titles, payment and
-- delivery types, SEO settings, translations.
SELECT throws_ok(format('SELECT sync_add_module(%L, ARRAY[%L]::regclass[])', 'x_' || t, 'shop.' || t),
                 '22023', format('table "shop.%s" is never synchronized', t),
                 format('shop.%s cannot be synchronized', t))
  FROM unnest(ARRAY['users', 'orders', 'order_items', 'reviews', 'promo_codes', 'campaigns', 'titles',
                    'payment_types', 'delivery_types', 'seo_settings', 'translations']) AS t;

SELECT throws_ok($$SELECT sync_add_environment('test', 'test_server')$$, '42710',
                 'environment "test" already exists', 'an environment is added once');
SELECT throws_ok($$SELECT sync_add_environment('staging', 'missing_server')$$, '42704',
                 'postgres_fdw server "missing_server" does not exist', 'an environment needs a foreign server');
SELECT throws_ok($$SELECT sync_add_module('news', ARRAY['shop.cms_pages']::regclass[], ARRAY['blog'])$$, '42704',
                 'module "blog" does not exist', 'an unknown required module is named');
SELECT throws_ok($$SELECT sync_add_module('gallery', ARRAY['shop.gallery_folders', 'shop.gallery_files']::regclass[], ARRAY['mobile_app'])$$,
                 '42P17', 'module "gallery" would depend on itself', 'a dependency cycle is refused');
SELECT throws_ok($$SELECT sync_add_module('pages', ARRAY['shop.cms_pages']::regclass[])$$, '42710',
                 'table "shop.cms_pages" already belongs to module "cms"', 'a table is in one module');
SELECT throws_ok($$SELECT sync_remove_environment('prod')$$, '55006',
                 'environment "prod" is this database', 'this database stays an environment');
SELECT lives_ok($$SELECT sync_add_module('cms', ARRAY['shop.cms_pages', 'shop.cms_blocks']::regclass[])$$,
                'a module can be redefined');
SELECT lives_ok($$SELECT sync_set_operator(current_user::regrole, 'dba@shop.example')$$,
                'an operator gets an e-mail address');
SELECT is((SELECT email FROM envsync.operators WHERE role_name = current_user), 'dba@shop.example',
          'the address is kept per role');

SELECT * FROM finish();
ROLLBACK;
