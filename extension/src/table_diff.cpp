// envsync.diff_table(source text, target text, tbl regclass, keys text[] DEFAULT NULL)
//   -> (key text[], source_hash bigint, target_hash bigint, changed_columns text[],
//       source_row jsonb, target_row jsonb)
//
// The records of one table whose content differs between two environments. Every row is read
// where it lives, as the table's owner (envsync.table_rows, envsync.table_buckets and
// envsync.table_bucket_hashes, or another environment's views over them). With keys NULL the
// comparison is full: each server sums up its rows per bucket of keys (the number of rows and
// the XOR of their hashes, the other server's asynchronously while this one sums up its own),
// then only the buckets that differ are read further, as keys and hashes, and the differing
// records in batches. So only summaries, the differing buckets' keys and hashes and the
// differing rows as JSON cross the network. With keys (each key as the text of its text[] form,
// '{42}'), only those records are read, through the primary key on each side: the incremental
// comparison, whose cost follows the number of changes, not the table size. Results go to a
// tuplestore, which spills to disk past work_mem: memory stays bounded.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pg/results.hpp"
#include "pg/spi.hpp"
#include "settings.hpp"

namespace envsync {
namespace {

constexpr int batch_size = 5000;         // keys per read at most
constexpr int first_part = 32;           // keys of the first read when the table's size is not known
constexpr int buckets_a_request = 4000;  // about 128,000 rows a side
constexpr int n_out = 6;

// The FROM items reading a table in an environment: its rows by key (parameter $1), its
// buckets' summaries (bits $1) and the keys and hashes of given buckets (bits $1, buckets $2).
struct Side {
    std::string rows_from;
    std::string buckets_from;
    std::string bucket_hashes_from;
};

Side read_side(Datum environment, Datum table) {
    // envsync.reading() raises an error when the table is not synchronized there.
    pg::execute("SELECT envsync.rows_sql($1, $2, 1), envsync.buckets_sql($1, $2, 'buckets'), "
                "       envsync.buckets_sql($1, $2, 'bucket hashes')",
                pg::Params().add(TEXTOID, environment).add(REGCLASSOID, table), true);
    return Side{pg::text_value(0, 1), pg::text_value(0, 2), pg::text_value(0, 3)};
}

// The batch: both sides' rows with the batch's keys ($1), joined by key, those that differ; $2
// the table's column names, for the changed columns. A last row without a key says how many
// bytes of rows the batch read on both sides.
std::string batch_query(const Side &source, const Side &target) {
    return fmt::format(
        "WITH src AS MATERIALIZED (SELECT key, hash, row FROM {} AS s), "
        "     dst AS MATERIALIZED (SELECT key, hash, row FROM {} AS d) "
        "SELECT coalesce(src.key, dst.key), src.hash, dst.hash, "
        "       CASE WHEN src.key IS NOT NULL AND dst.key IS NOT NULL THEN "
        "            ARRAY(SELECT c FROM unnest($2::text[]) WITH ORDINALITY AS u(c, n) "
        "                   WHERE src.row -> c IS DISTINCT FROM dst.row -> c ORDER BY n) END, "
        "       src.row, dst.row, NULL::bigint "
        "  FROM src FULL JOIN dst ON src.key = dst.key "
        " WHERE src.hash IS DISTINCT FROM dst.hash "
        "UNION ALL "
        "SELECT NULL, NULL, NULL, NULL, NULL, NULL, "
        "       (SELECT coalesce(sum(pg_column_size(row)), 0) FROM src) + (SELECT coalesce(sum(pg_column_size(row)), 0) FROM dst)",
        source.rows_from, target.rows_from);
}

struct DiffRun {
    ReturnSetInfo *result;
    std::string batch_sql;
    Datum columns;  // text[] of the table's column names, in order
    int part_rows;  // how many keys the next read asks for (envsync.batch_bytes)
};

// Diffs one part of a batch and appends the differing records to the result; returns the bytes
// of rows it read.
int64 diff_part(const DiffRun &run, Datum *keys, int n) {
    // Not read-only: another environment is asked by inserting a request there.
    Datum wanted = pg::text_array(keys, n);
    uint64_t rows = pg::execute(run.batch_sql, pg::Params().add(TEXTARRAYOID, wanted).add(TEXTARRAYOID, run.columns), false);
    pg::free_values(&wanted, 1);
    Datum values[n_out];
    bool isnull[n_out];
    int64 bytes = 0;
    for (uint64_t r = 0; r < rows; r++) {
        bool no_key;
        pg::value(r, 1, &no_key);
        if (no_key) {
            bytes = DatumGetInt64(pg::value(r, n_out + 1));
            continue;
        }
        for (int c = 0; c < n_out; c++)
            values[c] = pg::value(r, c + 1, &isnull[c]);
        pg::put_row(run.result, values, isnull);
    }
    pg::free_rows();
    return bytes;
}

// Diffs one batch of key texts, in parts of about envsync.batch_bytes of rows each (so that a
// backend holds no more of them at once, on either server): each part asks for as many keys as
// the bytes per row read so far allow, at most twice the previous part's.
void diff_batch(DiffRun &run, Datum *keys, int n) {
    int64 budget = int64(settings::batch_kilobytes) * 1024;
    for (int start = 0; start < n;) {
        int part = std::min(run.part_rows, n - start);
        int64 bytes = diff_part(run, keys + start, part);
        start += part;
        int64 fits = bytes > 0 ? int64(part) * budget / bytes : int64(batch_size);
        run.part_rows = int(std::clamp<int64>(fits, 1, std::min<int64>(int64(part) * 2, batch_size)));
    }
}

// How many keys the first read asks for: as many as envsync.batch_bytes holds of rows the size
// this server's table averages on disk, toast and indexes included, counted three times over
// (a row's JSON is larger than its tuple) for each side; 32 when the table's size is unknown.
int first_part_rows(Datum table) {
    pg::execute("SELECT CASE WHEN c.reltuples > 0 THEN pg_total_relation_size(c.oid)::float8 / c.reltuples END "
                "  FROM pg_class c WHERE c.oid = $1",
                pg::Params().add(REGCLASSOID, table), true);
    bool unknown;
    Datum row_bytes = pg::value(0, 1, &unknown);
    if (unknown)
        return first_part;
    double fits = double(settings::batch_kilobytes) * 1024 / (6 * std::max(DatumGetFloat8(row_bytes), 1.0));
    return int(std::clamp<double>(fits, 1, batch_size));
}

Datum table_columns(Datum table) {
    pg::execute("SELECT ARRAY(SELECT attname::text FROM pg_attribute "
                "              WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum)",
                pg::Params().add(REGCLASSOID, table), true);
    bool isnull;
    return pg::transfer(0, 1, &isnull);  // out of SPI's memory, which goes with the next statement
}

// The keys of given buckets whose stored hashes differ between the sides, or that one side
// lacks: each side's keys and hashes read whole (a group of buckets at most), matched here.
std::vector<std::string> differing_keys(const Side &source, const Side &target, Datum bits, Datum buckets) {
    std::unordered_map<std::string, int64> source_hashes;
    // Not read-only: another environment is asked by inserting a request there.
    uint64_t n = pg::execute(fmt::format("SELECT key, hash FROM {} AS s", source.bucket_hashes_from),
                             pg::Params().add(INT4OID, bits).add(INT8ARRAYOID, buckets), false);
    source_hashes.reserve(n);
    for (uint64_t r = 0; r < n; r++)
        source_hashes.emplace(pg::text_value(r, 1), DatumGetInt64(pg::value(r, 2)));
    pg::free_rows();
    n = pg::execute(fmt::format("SELECT key, hash FROM {} AS d", target.bucket_hashes_from),
                    pg::Params().add(INT4OID, bits).add(INT8ARRAYOID, buckets), false);
    std::vector<std::string> keys;
    for (uint64_t r = 0; r < n; r++) {
        std::string key = pg::text_value(r, 1);
        auto found = source_hashes.find(key);
        if (found == source_hashes.end()) {
            keys.push_back(std::move(key));
            continue;
        }
        if (found->second != DatumGetInt64(pg::value(r, 2)))
            keys.push_back(std::move(key));
        source_hashes.erase(found);
    }
    pg::free_rows();
    for (auto &[key, hash] : source_hashes)
        keys.push_back(key);
    return keys;
}

// The full comparison. First both servers sum up their rows per bucket at once (the other
// side's scan is asynchronous) and the buckets whose summaries differ are kept; then the keys
// and hashes of those buckets only are read from each side, and a key seen once, or with two
// hashes, differs. The summaries' aggregate spills to disk past work_mem; the keys of a group
// of buckets are matched in memory.
void diff_all(DiffRun &run, const Side &source, const Side &target, Datum table) {
    pg::execute("SELECT envsync.bucket_bits($1)", pg::Params().add(REGCLASSOID, table), true);
    Datum bits = pg::value(0, 1);
    // The differing buckets in groups, so that each side's answer (and the memory it takes)
    // stays bounded however much differs.
    uint64_t groups = pg::execute(
        fmt::format("SELECT array_agg(bucket) FROM ("
                    "  SELECT bucket, (row_number() OVER ()) / {} AS part FROM ("
                    "    SELECT bucket FROM (SELECT bucket, n, digest FROM {} AS s "
                    "                        UNION ALL SELECT bucket, n, digest FROM {} AS d) both_sides "
                    "     GROUP BY bucket HAVING count(*) = 1 OR min(n) <> max(n) OR min(digest) <> max(digest)) b) p "
                    " GROUP BY part",
                    buckets_a_request, source.buckets_from, target.buckets_from),
        pg::Params().add(INT4OID, bits), true);
    std::vector<Datum> bucket_groups(groups);
    for (uint64_t g = 0; g < groups; g++)
        bucket_groups[g] = pg::value(g, 1);
    SPITupleTable *kept = pg::keep_rows();  // the groups live there
    std::vector<Datum> keys;
    for (Datum buckets : bucket_groups) {
        std::vector<std::string> differing = differing_keys(source, target, bits, buckets);
        for (size_t start = 0; start < differing.size(); start += batch_size) {
            size_t n = std::min<size_t>(batch_size, differing.size() - start);
            keys.clear();
            for (size_t i = 0; i < n; i++)
                keys.push_back(pg::text_datum(differing[start + i].c_str()));
            diff_batch(run, keys.data(), static_cast<int>(n));
            pg::free_values(keys.data(), n);
        }
    }
    pg::free_rows(kept);
}

Datum diff_table(FunctionCallInfo fcinfo) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
        throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "source, target and table must not be null");
    Datum source_env = PG_GETARG_DATUM(0), target_env = PG_GETARG_DATUM(1), table = PG_GETARG_DATUM(2);
    ReturnSetInfo *result = pg::materialized_result(fcinfo);
    pg::connect();
    Side source = read_side(source_env, table);
    Side target = read_side(target_env, table);
    DiffRun run{result, batch_query(source, target), table_columns(table), first_part_rows(table)};
    if (PG_ARGISNULL(3)) {
        diff_all(run, source, target, table);
    } else {
        Datum *keys = nullptr;
        int n = pg::text_array_argument(fcinfo, 3, &keys);
        for (int start = 0; start < n; start += batch_size)
            diff_batch(run, keys + start, std::min(batch_size, n - start));
    }
    pg::finish();
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
