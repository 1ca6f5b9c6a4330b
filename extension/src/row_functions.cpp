// SQL-callable row readers, used by the table reads, the apply and a DBA diffing rows by hand:
//   envsync.row_hash(record) -> bigint     the content hash of a row
//   envsync.stored_hash(record) -> bigint  a row's hash by its stored values (pg/rows.hpp)
//   envsync.row_json(record) -> jsonb      the row as the review shows it and an apply writes it
//   envsync.key_text(anyelement) -> text   a key column's text, as the change trigger logs it
#include "pg/records.hpp"
#include "row_shape.hpp"

namespace envsync {
namespace {

Datum hash_of_record(FunctionCallInfo fcinfo) {
    pg::RecordValues row = pg::record_argument(fcinfo, 0);
    const RowShape &shape = row_shape(row.desc, false);
    return Int64GetDatum(static_cast<int64>(pg::row_hash(shape.columns, row.values, row.nulls)));
}

Datum stored_hash_of_record(FunctionCallInfo fcinfo) {
    pg::RecordValues row = pg::record_argument(fcinfo, 0);
    const RowShape &shape = row_shape(row.desc, false);
    return Int64GetDatum(static_cast<int64>(pg::stored_hash(shape.columns, row.values, row.nulls)));
}

Datum json_of_record(FunctionCallInfo fcinfo) {
    pg::RecordValues row = pg::record_argument(fcinfo, 0);
    const RowShape &shape = row_shape(row.desc, false);
    return pg::row_json(shape.columns, row.desc, row.values, row.nulls);
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_row_hash);
Datum envsync_row_hash(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::hash_of_record(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_stored_hash);
Datum envsync_stored_hash(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::stored_hash_of_record(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_key_text);
Datum envsync_key_text(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::pg::pinned_text_argument(fcinfo, 0); });
}
PG_FUNCTION_INFO_V1(envsync_row_json);
Datum envsync_row_json(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::json_of_record(fcinfo); });
}
}
