#!/usr/bin/env bash
# The envsync demo on a fresh Debian 12 machine (the README's first command): installs the
# packages, builds envsync, starts two local clusters (PROD and TEST), loads the sample shop on
# both with differences made on each side, and shows what envsync tracked. The clusters keep
# running afterwards for a look around (test/cluster.sh psql prod; test/cluster.sh stop).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash test/install_deps.sh
bash test/build.sh
cluster=$repo/test/cluster.sh
"$cluster" start
bash test/setup_shop.sh 1
show() { echo; echo "== $1"; "$cluster" psql "$2" -P pager=off -P footer=off -c "$3"; }

show "Modules PROD synchronizes (mobile_app requires gallery; settings only mobile_app.%)" prod \
    "SELECT module, table_name, filter_column || ' LIKE ' || filter_pattern AS row_filter,
            is_root AS picked_per_run, module_requires, tracked_in
       FROM envsync.synced_tables ORDER BY module, position"

echo; echo "== Content is prepared on TEST; meanwhile PROD changes too (test/fixtures/shop_generate.sql, diverge())"
"$cluster" psql test -c "SELECT shop_fixture.diverge('test')" -o /dev/null
"$cluster" psql prod -c "SELECT shop_fixture.diverge('prod')" -o /dev/null

show "Tracked on PROD: envsync.tracked_changes" prod \
    "SELECT table_name, key, inserted, updated, deleted, by_envsync, writes
       FROM envsync.tracked_changes ORDER BY table_name::text, key"

show "Tracked on TEST, read from PROD through postgres_fdw" prod \
    "SELECT t.relid AS table_name, l.key, bool_or(l.kind = 'I') AS inserted, bool_or(l.kind = 'U') AS updated,
            bool_or(l.kind = 'D') AS deleted, count(*) AS writes
       FROM envsync_env_test.row_log l
       JOIN envsync.environment_tables et ON et.environment = 'test' AND et.remote_table_id = l.table_id
       JOIN envsync.tracked_tables t ON t.table_id = et.table_id
      GROUP BY 1, 2 ORDER BY t.relid::text, l.key"

show "Records whose content now differs between PROD and TEST (by content hash)" prod \
    "WITH p AS (SELECT et.table_id, h.key, h.hash FROM envsync.row_hashes h
                  JOIN envsync.environment_tables et ON et.environment = 'prod' AND et.remote_table_id = h.table_id),
          t AS (SELECT et.table_id, h.key, h.hash FROM envsync_env_test.row_hashes h
                  JOIN envsync.environment_tables et ON et.environment = 'test' AND et.remote_table_id = h.table_id)
     SELECT m.module, tt.relid AS table_name,
            count(*) FILTER (WHERE p.key IS NULL) AS only_on_test,
            count(*) FILTER (WHERE t.key IS NULL) AS only_on_prod,
            count(*) FILTER (WHERE p.key IS NOT NULL AND t.key IS NOT NULL) AS different
       FROM p FULL JOIN t USING (table_id, key)
       JOIN envsync.tracked_tables tt USING (table_id)
       JOIN envsync.module_tables m USING (table_id)
      WHERE p.hash IS DISTINCT FROM t.hash
      GROUP BY 1, 2 ORDER BY m.module, tt.relid::text"

echo
echo "The clusters are running: test/cluster.sh psql prod   (or test); stop them with test/cluster.sh stop"
