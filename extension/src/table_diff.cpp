// envsync.diff_table(source text, target text, tbl regclass, keys text[] DEFAULT NULL)
//   -> (key text[], source_hash bigint, target_hash bigint, changed_columns text[],
//       source_row jsonb, target_row jsonb)
//
// The records of one table whose content differs between two environments, each read where it
// lives: locally, or over postgres_fdw. With keys NULL the comparison is full: the two sides'
// envsync.row_hashes are joined (each side hashes its own rows, so only keys and hashes
// travel), then the differing records are read in batches. With keys (each key as the text of
// its text[] form, '{42}'), only those records are read, through the primary key on each side:
// the incremental comparison, whose cost follows the number of changes, not the table size.
// Results go to a tuplestore, which spills to disk past work_mem: memory stays bounded.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "pg_boundary.hpp"

namespace envsync {
namespace {

constexpr int batch_size = 5000;
constexpr int n_out = 6;

// Calls PostgreSQL: inside pg_call(). Empty string for NULL.
char *text_value(HeapTuple tuple, TupleDesc desc, int column) {
    bool isnull;
    Datum value = SPI_getbinval(tuple, desc, column, &isnull);
    return isnull ? pstrdup("") : TextDatumGetCString(value);
}

// Where an environment's rows and row hashes of the table are read (quoted SQL names).
struct Side {
    std::string rows_from;
    std::string hashes_from;
    int32 table_id = 0;
};

Side read_side(Datum environment, Datum table) {
    Side side;
    pg_call([&] {
        Oid types[2] = {TEXTOID, REGCLASSOID};
        Datum args[2] = {environment, table};
        SPI_execute_with_args("SELECT rows_from, hashes_from, table_id FROM envsync.reading($1, $2)",
                              2, types, args, nullptr, true, 1);
    });
    // envsync.reading() raises an error when there is no row.
    char *rows_from = nullptr, *hashes_from = nullptr;
    side.table_id = pg_call([&] {
        HeapTuple tuple = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        rows_from = text_value(tuple, desc, 1);
        hashes_from = text_value(tuple, desc, 2);
        bool isnull;
        return DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
    });
    side.rows_from = rows_from;
    side.hashes_from = hashes_from;
    return side;
}

// What the SQL needs to know of the table: key columns, types, row filter, columns.
struct TableSql {
    std::vector<std::string> key_names;  // quoted
    std::vector<std::string> key_types;  // type names, as format_type gives them
    std::string filter;                   // " AND ..." or empty
    Datum columns = 0;                    // text[] of column names, in order
};

TableSql read_table(Datum table) {
    TableSql sql;
    pg_call([&] {
        Oid types[1] = {REGCLASSOID};
        Datum args[1] = {table};
        SPI_execute_with_args("SELECT quote_ident(attname), format_type(atttypid, atttypmod) "
                              "FROM envsync.key_columns($1) ORDER BY ord",
                              1, types, args, nullptr, true, 0);
    });
    int nkeys = pg_call([] { return static_cast<int>(SPI_processed); });
    for (int i = 0; i < nkeys; i++) {
        char *name = nullptr, *type = nullptr;
        pg_call([&] {
            name = text_value(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
            type = text_value(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
        });
        sql.key_names.emplace_back(name);
        sql.key_types.emplace_back(type);
    }
    pg_call([&] {
        Oid types[1] = {REGCLASSOID};
        Datum args[1] = {table};
        SPI_execute_with_args(
            "SELECT CASE WHEN filter_column IS NOT NULL "
            "            THEN format(' AND t.%I LIKE %L', filter_column, filter_pattern) ELSE '' END, "
            "       ARRAY(SELECT attname::text FROM pg_attribute "
            "              WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum) "
            "  FROM envsync.tracked_tables WHERE relid = $1",
            1, types, args, nullptr, true, 1);
    });
    char *filter = nullptr;
    sql.columns = pg_call([&] {
        if (SPI_processed != 1)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("table \"%s\" is not synchronized", get_rel_name(DatumGetObjectId(table))),
                            errhint("Add it to a module with sync_add_module().")));
        filter = text_value(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
        bool isnull;
        // Copied out of SPI's memory, which goes with the next statement.
        Datum columns = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
        return SPI_datumTransfer(columns, false, -1);
    });
    sql.filter = filter;
    return sql;
}

// A batch: the key texts, then one typed array per key column, read by the primary key index
// on each side (postgres_fdw sends "= ANY($n)" to the other server).
std::string batch_query(const TableSql &sql, const Side &source, const Side &target) {
    std::string key_expr, match;
    for (size_t i = 0; i < sql.key_names.size(); i++) {
        key_expr += fmt::format("{}t.{}::text", i ? ", " : "", sql.key_names[i]);
        match += fmt::format(" AND t.{} = ANY(${})", sql.key_names[i], i + 2);
    }
    auto rows = [&](const Side &side, const char *is_source) {
        return fmt::format("SELECT {} AS is_source, ARRAY[{}] AS key, envsync.row_hash(t) AS hash, "
                           "envsync.row_json(t) AS row FROM {} t WHERE true{}{}",
                           is_source, key_expr, side.rows_from, match, sql.filter);
    };
    int columns_param = static_cast<int>(sql.key_names.size()) + 2;
    // Both sides in one Append: the other server's rows are read asynchronously while this
    // one reads its own. Each row is read, hashed and converted once (MATERIALIZED).
    return fmt::format(
        "WITH both_sides AS MATERIALIZED ({} UNION ALL {}) "
        "SELECT coalesce(src.key, dst.key), src.hash, dst.hash, "
        "       CASE WHEN src.key IS NOT NULL AND dst.key IS NOT NULL THEN "
        "            ARRAY(SELECT c FROM unnest(${}::text[]) WITH ORDINALITY AS u(c, n) "
        "                   WHERE src.row -> c IS DISTINCT FROM dst.row -> c ORDER BY n) END, "
        "       src.row, dst.row "
        "  FROM (SELECT * FROM both_sides WHERE is_source) src "
        "  FULL JOIN (SELECT * FROM both_sides WHERE NOT is_source) dst ON src.key = dst.key "
        " WHERE coalesce(src.key, dst.key)::text IN (SELECT unnest($1)) "  // hashed: exact composite keys
        "   AND src.hash IS DISTINCT FROM dst.hash",
        rows(source, "true"), rows(target, "false"), columns_param);
}

// Typed arrays of each key column's values, from the key texts.
std::string convert_query(const TableSql &sql) {
    std::string arrays;
    for (size_t i = 0; i < sql.key_types.size(); i++)
        arrays += fmt::format("{}array_agg(k[{}])::{}[]", i ? ", " : "", i + 1, sql.key_types[i]);
    return fmt::format("SELECT {} FROM unnest($1) AS u(lit), LATERAL (SELECT u.lit::text[] AS k) x", arrays);
}

struct DiffRun {
    ReturnSetInfo *result;
    std::string convert_sql, batch_sql;
    Datum columns;
    int nkeys;
};

// Diffs one batch of key texts and appends the differing records to the result.
void diff_batch(const DiffRun &run, Datum *keys, int n) {
    pg_call([&] {
        Datum literals = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
        Oid text_array[1] = {TEXTARRAYOID};
        Datum convert_args[1] = {literals};
        if (SPI_execute_with_args(run.convert_sql.c_str(), 1, text_array, convert_args, nullptr, true, 1)
            != SPI_OK_SELECT)
            elog(ERROR, "envsync: converting keys failed");
        int nargs = run.nkeys + 2;
        Oid *types = static_cast<Oid *>(palloc(nargs * sizeof(Oid)));
        Datum *args = static_cast<Datum *>(palloc(nargs * sizeof(Datum)));
        char *nulls = static_cast<char *>(palloc(nargs));
        types[0] = TEXTARRAYOID;
        args[0] = literals;
        nulls[0] = ' ';
        for (int i = 0; i < run.nkeys; i++) {
            bool isnull;
            types[i + 1] = SPI_gettypeid(SPI_tuptable->tupdesc, i + 1);
            args[i + 1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);
            nulls[i + 1] = isnull ? 'n' : ' ';
        }
        types[nargs - 1] = TEXTARRAYOID;
        args[nargs - 1] = run.columns;
        nulls[nargs - 1] = ' ';
        SPITupleTable *converted = SPI_tuptable;
        if (SPI_execute_with_args(run.batch_sql.c_str(), nargs, types, args, nulls, true, 0) != SPI_OK_SELECT)
            elog(ERROR, "envsync: reading a batch failed");
        SPI_freetuptable(converted);
        Datum values[n_out];
        bool isnull[n_out];
        for (uint64 r = 0; r < SPI_processed; r++) {
            for (int c = 0; c < n_out; c++)
                values[c] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1, &isnull[c]);
            tuplestore_putvalues(run.result->setResult, run.result->setDesc, values, isnull);
        }
        SPI_freetuptable(SPI_tuptable);
        pfree(types);
        pfree(args);
        pfree(nulls);
    });
}

Datum diff_table(FunctionCallInfo fcinfo) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
        throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "source, target and table must not be null");
    Datum source_env = PG_GETARG_DATUM(0), target_env = PG_GETARG_DATUM(1), table = PG_GETARG_DATUM(2);
    pg_call([&] {
        InitMaterializedSRF(fcinfo, 0);
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "envsync: SPI_connect failed");
    });
    auto *result = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Side source = read_side(source_env, table);
    Side target = read_side(target_env, table);
    TableSql sql = read_table(table);
    DiffRun run{result, convert_query(sql), batch_query(sql, source, target), sql.columns,
                static_cast<int>(sql.key_names.size())};

    if (!PG_ARGISNULL(3)) {
        Datum *keys = nullptr;
        int n = pg_call([&] {
            bool *key_nulls;
            int count;
            deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT, &keys,
                              &key_nulls, &count);
            for (int i = 0; i < count; i++)
                if (key_nulls[i])
                    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                                    errmsg("keys must not contain NULL"),
                                    errhint("Give each key as the text of its text[] form, like '{42}'.")));
            return count;
        });
        for (int start = 0; start < n; start += batch_size)
            diff_batch(run, keys + start, std::min(batch_size, n - start));
    } else {
        // Only keys and hashes cross the network, and each server hashes its own rows at the
        // same time (the other side's scan is asynchronous). A key seen once, or with two
        // hashes, differs. The aggregate spills to disk past work_mem.
        std::string candidates = fmt::format(
            "SELECT {} FROM (SELECT key, hash FROM {} WHERE table_id = {} "
            "                UNION ALL SELECT key, hash FROM {} WHERE table_id = {}) both_sides "
            " GROUP BY key HAVING count(*) = 1 OR min(hash) <> max(hash)",
            run.nkeys == 1 ? "ARRAY[key]::text" : "key",  // a single key column comes bare
            source.hashes_from, source.table_id, target.hashes_from, target.table_id);
        Portal cursor = pg_call([&] {
            return SPI_cursor_open_with_args("envsync_diff_candidates", candidates.c_str(), 0, nullptr,
                                             nullptr, nullptr, true, 0);
        });
        Datum *keys = pg_call([] { return static_cast<Datum *>(palloc(batch_size * sizeof(Datum))); });
        for (;;) {
            SPITupleTable *batch = nullptr;
            int n = pg_call([&] {
                SPI_cursor_fetch(cursor, true, batch_size);
                batch = SPI_tuptable;
                for (uint64 i = 0; i < SPI_processed; i++) {
                    bool isnull;
                    keys[i] = SPI_getbinval(batch->vals[i], batch->tupdesc, 1, &isnull);
                }
                return static_cast<int>(SPI_processed);
            });
            if (n == 0)
                break;
            diff_batch(run, keys, n);  // the keys live in batch until it is freed
            pg_call([&] { SPI_freetuptable(batch); });
        }
        pg_call([&] { SPI_cursor_close(cursor); });
    }
    pg_call([] { SPI_finish(); });
    return Datum(0);
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_diff_table);
Datum envsync_diff_table(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::diff_table(fcinfo); });
}
}
