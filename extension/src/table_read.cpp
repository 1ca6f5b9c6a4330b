// Reading a synced table where it lives, as its owner:
//   envsync.table_hashes(table_id integer) -> (key text, hash bigint)
//       every synced row's key and content hash (the full comparison)
//   envsync.table_rows(table_id integer, keys text[]) -> (key text[], hash bigint, row jsonb)
//       the rows with these keys (each the text of its text[] form, '{42}'), all rows if NULL
//
// Planning a query over a table evaluates the constant parts of its index expressions, and
// reading it may run its row security policies: the shop's code. So the query runs as the
// table's owner (pg/owner.hpp), with row_security off (a policy that would apply to the owner
// is an error, never evaluated). What is read and who may read it is decided by
// envsync.readable_table(), which also builds the query; rows outside a table's row filter are
// never read.
#include <string>

#include "pg/owner.hpp"
#include "pg/results.hpp"
#include "pg/spi.hpp"

namespace envsync {
namespace {

// Runs the query envsync.readable_table() gives for the table, as the table's owner, into the
// function's result.
void read_table(FunctionCallInfo fcinfo, const char *what, Datum keys, bool keys_null) {
    ReturnSetInfo *result = pg::materialized_result(fcinfo);
    pg::connect();
    pg::execute("SELECT owner, query FROM envsync.readable_table($1, $2)",
                pg::Params().add(INT4OID, PG_GETARG_DATUM(0)).add(TEXTOID, pg::text_datum(what)),
                true);
    Oid owner = DatumGetObjectId(pg::value(0, 1));
    std::string query = pg::text_value(0, 2);
    pg::as_owner(owner, true, [&] {
        Portal cursor = pg::open(nullptr, query, pg::Params().add(TEXTARRAYOID, keys, keys_null), true);
        while (uint64_t n = pg::fetch(cursor, 10000)) {
            pg::put_statement_rows(result, n);
            pg::free_rows();
        }
        pg::close(cursor);
    });
    pg::finish();
}

Datum table_hashes(FunctionCallInfo fcinfo) {
    read_table(fcinfo, "hashes", Datum(0), true);
    return Datum(0);
}

Datum table_rows(FunctionCallInfo fcinfo) {
    read_table(fcinfo, "rows", PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1), PG_ARGISNULL(1));
    return Datum(0);
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_table_hashes);
Datum envsync_table_hashes(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::table_hashes(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_table_rows);
Datum envsync_table_rows(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::table_rows(fcinfo); });
}
}
