// envsync.diff_table(source text, target text, tbl regclass, keys text[] DEFAULT NULL)
//   -> (key text[], source_hash bigint, target_hash bigint, changed_columns text[],
//       source_row jsonb, target_row jsonb)
//
// The records of one table whose content differs between two environments. Every row is read
// where it lives, as the table's owner (envsync.table_rows, or another environment's
// envsync.read_requests), so only keys, hashes and the differing rows as JSON cross the network.
// With keys NULL the comparison is full: the two sides' envsync.row_hashes are joined (each
// server hashes its own rows, the other one's asynchronously while this one hashes), then the
// differing records are read in batches. With keys (each key as the text of its text[] form,
// '{42}'), only those records are read, through the primary key on each side: the incremental
// comparison, whose cost follows the number of changes, not the table size. Results go to a
// tuplestore, which spills to disk past work_mem: memory stays bounded.
#include <fmt/format.h>

#include <algorithm>
#include <string>

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

// Where an environment's row hashes of the table are read, its id there, and the FROM item
// reading its rows by key (parameter $1).
struct Side {
    std::string hashes_from;
    std::string rows_from;
    int32 table_id = 0;
};

Side read_side(Datum environment, Datum table) {
    char *hashes_from = nullptr, *rows_from = nullptr;
    int32 table_id = pg_call([&] {
        Oid types[2] = {TEXTOID, REGCLASSOID};
        Datum args[2] = {environment, table};
        // envsync.reading() raises an error when the table is not synchronized there.
        SPI_execute_with_args("SELECT r.hashes_from, envsync.rows_sql($1, $2, 1), r.table_id "
                              "  FROM envsync.reading($1, $2) r",
                              2, types, args, nullptr, true, 1);
        HeapTuple tuple = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        hashes_from = text_value(tuple, desc, 1);
        rows_from = text_value(tuple, desc, 2);
        bool isnull;
        return DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
    });
    Side side;
    side.hashes_from = hashes_from;
    side.rows_from = rows_from;
    side.table_id = table_id;
    return side;
}

struct DiffRun {
    ReturnSetInfo *result;
    std::string batch_sql;
    Datum columns;  // text[] of the table's column names, in order
};

// Diffs one batch of key texts and appends the differing records to the result.
void diff_batch(const DiffRun &run, Datum *keys, int n) {
    pg_call([&] {
        Oid types[2] = {TEXTARRAYOID, TEXTARRAYOID};
        Datum args[2] = {PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT)), run.columns};
        // Not read-only: another environment is asked by inserting a request there.
        if (SPI_execute_with_args(run.batch_sql.c_str(), 2, types, args, nullptr, false, 0) != SPI_OK_SELECT)
            elog(ERROR, "envsync: reading a batch failed");
        Datum values[n_out];
        bool isnull[n_out];
        for (uint64 r = 0; r < SPI_processed; r++) {
            for (int c = 0; c < n_out; c++)
                values[c] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1, &isnull[c]);
            tuplestore_putvalues(run.result->setResult, run.result->setDesc, values, isnull);
        }
        SPI_freetuptable(SPI_tuptable);
    });
}

// The batch: both sides' rows with the batch's keys, joined by key, those that differ.
std::string batch_query(const Side &source, const Side &target) {
    return fmt::format(
        "WITH src AS MATERIALIZED (SELECT key, hash, row FROM {} AS s), "
        "     dst AS MATERIALIZED (SELECT key, hash, row FROM {} AS d) "
        "SELECT coalesce(src.key, dst.key), src.hash, dst.hash, "
        "       CASE WHEN src.key IS NOT NULL AND dst.key IS NOT NULL THEN "
        "            ARRAY(SELECT c FROM unnest($2::text[]) WITH ORDINALITY AS u(c, n) "
        "                   WHERE src.row -> c IS DISTINCT FROM dst.row -> c ORDER BY n) END, "
        "       src.row, dst.row "
        "  FROM src FULL JOIN dst ON src.key = dst.key "
        " WHERE src.hash IS DISTINCT FROM dst.hash",
        source.rows_from, target.rows_from);
}

Datum table_columns(Datum table) {
    return pg_call([&] {
        Oid types[1] = {REGCLASSOID};
        Datum args[1] = {table};
        SPI_execute_with_args("SELECT ARRAY(SELECT attname::text FROM pg_attribute "
                              "              WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum)",
                              1, types, args, nullptr, true, 1);
        bool isnull;
        // Copied out of SPI's memory, which goes with the next statement.
        return SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull), false, -1);
    });
}

int key_count(Datum table) {
    return pg_call([&] {
        Oid types[1] = {REGCLASSOID};
        Datum args[1] = {table};
        SPI_execute_with_args("SELECT count(*)::integer FROM envsync.key_columns($1)", 1, types, args, nullptr, true, 1);
        bool isnull;
        return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
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
    DiffRun run{result, batch_query(source, target), table_columns(table)};

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
            key_count(table) == 1 ? "ARRAY[key]::text" : "key",  // a single key column comes bare
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
