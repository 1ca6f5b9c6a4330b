// Reading a synced table where it lives, as its owner:
//   envsync.table_hashes(table_id integer) -> (key text, hash bigint)
//       every synced row's key and content hash (the full comparison)
//   envsync.table_rows(table_id integer, keys text[]) -> (key text[], hash bigint, row jsonb)
//       the rows with these keys (each the text of its text[] form, '{42}'), all rows if NULL
//   envsync.table_buckets(table_id integer, bits integer) -> (bucket bigint, n bigint, digest bigint)
//       per bucket of keys (a range of keys, or bits of the key's hash), its rows and the XOR of
//       their hashes
//   envsync.table_bucket_hashes(table_id integer, bits integer, buckets bigint[]) -> (key text, hash bigint)
//       the key and hash of every row in these buckets (the full comparison's second step)
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
void read_table(FunctionCallInfo fcinfo, const char *what, const pg::Params &params) {
    ReturnSetInfo *result = pg::materialized_result(fcinfo);
    pg::connect();
    pg::execute("SELECT owner, query FROM envsync.readable_table($1, $2)",
                pg::Params().add(INT4OID, PG_GETARG_DATUM(0)).add(TEXTOID, pg::text_datum(what)),
                true);
    Oid owner = DatumGetObjectId(pg::value(0, 1));
    std::string query = pg::text_value(0, 2);
    pg::as_owner(owner, true, [&] {
        Portal cursor = pg::open(nullptr, query, params, true);
        while (uint64_t n = pg::fetch(cursor, 10000)) {
            pg::put_statement_rows(result, n);
            pg::free_rows();
        }
        pg::close(cursor);
    });
    pg::finish();
}

Datum table_hashes(FunctionCallInfo fcinfo) {
    read_table(fcinfo, "hashes", pg::Params());
    return Datum(0);
}

Datum table_rows(FunctionCallInfo fcinfo) {
    read_table(fcinfo, "rows",
               pg::Params().add(TEXTARRAYOID, PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1), PG_ARGISNULL(1)));
    return Datum(0);
}

int32 bucket_bits(FunctionCallInfo fcinfo) {
    int32 bits = PG_GETARG_INT32(1);
    if (bits < 0 || bits > 62)
        throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "bits must be between 0 and 62");
    return bits;
}

Datum table_buckets(FunctionCallInfo fcinfo) {
    read_table(fcinfo, "buckets", pg::Params().add(INT4OID, Int32GetDatum(bucket_bits(fcinfo))));
    return Datum(0);
}

Datum table_bucket_hashes(FunctionCallInfo fcinfo) {
    read_table(fcinfo, "bucket hashes",
               pg::Params().add(INT4OID, Int32GetDatum(bucket_bits(fcinfo))).add(INT8ARRAYOID, PG_GETARG_DATUM(2)));
    return Datum(0);
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_table_hashes);
Datum envsync_table_hashes(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::table_hashes(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_table_buckets);
Datum envsync_table_buckets(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::table_buckets(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_table_bucket_hashes);
Datum envsync_table_bucket_hashes(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::table_bucket_hashes(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_table_rows);
Datum envsync_table_rows(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::table_rows(fcinfo); });
}
}
