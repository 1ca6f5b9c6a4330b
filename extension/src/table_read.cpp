// Reading a synced table where it lives, as its owner:
//   envsync.table_hashes(table_id integer) -> (key text, hash bigint)
//       every synced row's key and content hash (the full comparison)
//   envsync.table_rows(table_id integer, keys text[]) -> (key text[], hash bigint, row jsonb)
//       the rows with these keys (each the text of its text[] form, '{42}'), all rows if NULL
//   envsync.table_buckets(table_id integer, bits integer) -> (bucket bigint, n bigint, digest bigint)
//       per bucket of keys (a range of keys, or bits of the key's hash), its rows and the XOR of
//       their hashes; for a range key summed straight from the table
//   envsync.table_bucket_hashes(table_id integer, bits integer, buckets bigint[]) -> (key text, hash bigint)
//       the key and stored hash of every row in these buckets (the full comparison's second step)
//
// Planning a query over a table evaluates the constant parts of its index expressions, and
// reading it may run its row security policies: the shop's code. So the query runs as the
// table's owner (pg/owner.hpp), with row_security off (a policy that would apply to the owner
// is an error, never evaluated). What is read and who may read it is decided by
// envsync.readable_table(), which also builds the query; rows outside a table's row filter are
// never read.
#include <fmt/format.h>

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pg/owner.hpp"
#include "pg/results.hpp"
#include "pg/scan.hpp"
#include "pg/spi.hpp"
#include "row_shape.hpp"

namespace envsync {
namespace {

// What envsync.readable_table() says of a table: as whom it is read, with which query, and
// what a summary read without a query needs.
struct ReadPlan {
    Oid owner;
    std::string query;
    Oid relid;
    std::string range_column;  // empty: not a range key
    pg::RowFilter filter;
};

ReadPlan read_plan(Datum table_id, const char *what) {
    pg::execute("SELECT owner, query, relid, range_column::text, filter_column::text, filter_pattern "
                "  FROM envsync.readable_table($1, $2)",
                pg::Params().add(INT4OID, table_id).add(TEXTOID, pg::text_datum(what)), true);
    return ReadPlan{DatumGetObjectId(pg::value(0, 1)), pg::text_value(0, 2), DatumGetObjectId(pg::value(0, 3)),
                    pg::text_value(0, 4), pg::RowFilter{pg::text_value(0, 5), pg::text_value(0, 6)}};
}

// Runs the plan's query as the table's owner, into the function's result.
void run_query(FunctionCallInfo fcinfo, const ReadPlan &plan, const pg::Params &params) {
    ReturnSetInfo *result = pg::materialized_result(fcinfo);
    pg::as_owner(plan.owner, true, [&] {
        Portal cursor = pg::open(nullptr, plan.query, params, true);
        while (uint64_t n = pg::fetch(cursor, 10000)) {
            pg::put_statement_rows(result, n);
            pg::free_rows();
        }
        pg::close(cursor);
    });
}

void read_table(FunctionCallInfo fcinfo, const char *what, const pg::Params &params) {
    pg::connect();
    run_query(fcinfo, read_plan(PG_GETARG_DATUM(0), what), params);
    pg::finish();
}

struct BucketSums {
    int64 rows = 0;
    uint64_t digest = 0;
};

// Reads the rows of a table whose key is one integer column as its owner, with scan(table, row)
// (a pg/scan.hpp reader): each row's key and stored hash (pg/rows.hpp) go to take(id, hash).
// Several times faster than a query, since no whole-row value is made and no type's hash
// function called for each row.
template <typename Scan, typename Take>
void range_keyed_rows(const ReadPlan &plan, const Scan &scan, const Take &take) {
    const RowShape *shape = nullptr;
    int key = 0;
    int16 key_length = 0;
    pg::as_owner(plan.owner, true, [&] {
        scan(
            [&](TupleDesc desc) {
                shape = &row_shape(desc, false);
                key = pg::column_index(desc, plan.range_column);
                key_length = shape->columns[key].typlen;
            },
            [&](const Datum *values, const bool *nulls) {
                int64 id = key_length == 8 ? DatumGetInt64(values[key])
                         : key_length == 4 ? int64(DatumGetInt32(values[key])) : int64(DatumGetInt16(values[key]));
                take(id, pg::unguarded::stored_hash(shape->columns, values, nulls));
            });
    });
}

// The summaries of such a table, bucketed by range (the key shifted right by bits), straight
// from the table.
void sum_range_buckets(FunctionCallInfo fcinfo, const ReadPlan &plan, int32 bits) {
    ReturnSetInfo *result = pg::materialized_result(fcinfo);
    std::unordered_map<int64, BucketSums> buckets;
    range_keyed_rows(
        plan, [&](const auto &table, const auto &row) { pg::scan_rows(plan.relid, plan.filter, table, row); },
        [&](int64 id, uint64_t hash) {
            BucketSums &sums = buckets[id >> bits];
            sums.rows++;
            sums.digest ^= hash;
        });
    Datum out[3];
    bool nulls[3] = {false, false, false};
    for (const auto &[bucket, sums] : buckets) {
        out[0] = Int64GetDatum(bucket);
        out[1] = Int64GetDatum(sums.rows);
        out[2] = Int64GetDatum(static_cast<int64>(sums.digest));
        pg::put_row(result, out, nulls);
    }
}

// The keys and stored hashes of the rows in given buckets of such a table, through its primary
// key: the same hash its bucket summaries sum up.
void hash_range_buckets(FunctionCallInfo fcinfo, const ReadPlan &plan, int32 bits, const std::vector<int64> &buckets) {
    ReturnSetInfo *result = pg::materialized_result(fcinfo);
    const uint64_t width = (uint64_t(1) << bits) - 1;
    std::vector<pg::KeyRange> ranges;
    ranges.reserve(buckets.size());
    for (int64 bucket : buckets) {
        // unsigned: a bucket no key falls in reads nothing, and cannot overflow
        uint64_t low = uint64_t(bucket) << bits;
        ranges.push_back(pg::KeyRange{int64(low), int64(low + width)});
    }
    std::vector<std::pair<int64, uint64_t>> rows;
    range_keyed_rows(
        plan,
        [&](const auto &table, const auto &row) { pg::scan_key_ranges(plan.relid, plan.filter, std::move(ranges), table, row); },
        [&](int64 id, uint64_t hash) { rows.emplace_back(id, hash); });
    Datum out[2];
    bool nulls[2] = {false, false};
    for (const auto &[id, hash] : rows) {
        out[0] = pg::text_datum(fmt::format("{{{}}}", id).c_str());  // the text of the key's text[]
        out[1] = Int64GetDatum(static_cast<int64>(hash));
        pg::put_row(result, out, nulls);
        pg::free_values(out, 1);
    }
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
    int32 bits = bucket_bits(fcinfo);
    pg::connect();
    ReadPlan plan = read_plan(PG_GETARG_DATUM(0), "buckets");
    if (plan.range_column.empty())
        run_query(fcinfo, plan, pg::Params().add(INT4OID, Int32GetDatum(bits)));
    else
        sum_range_buckets(fcinfo, plan, bits);
    pg::finish();
    return Datum(0);
}

Datum table_bucket_hashes(FunctionCallInfo fcinfo) {
    int32 bits = bucket_bits(fcinfo);
    pg::connect();
    ReadPlan plan = read_plan(PG_GETARG_DATUM(0), "bucket hashes");
    if (plan.range_column.empty())
        run_query(fcinfo, plan, pg::Params().add(INT4OID, Int32GetDatum(bits)).add(INT8ARRAYOID, PG_GETARG_DATUM(2)));
    else
        hash_range_buckets(fcinfo, plan, bits, pg::bigint_array_argument(fcinfo, 2));
    pg::finish();
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
