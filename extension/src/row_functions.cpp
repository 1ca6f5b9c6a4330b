// SQL-callable row readers, used by the hash views, the comparison and a DBA diffing rows by hand:
//   envsync.row_hash(record) -> bigint     the content hash the change trigger logs
//   envsync.row_json(record) -> jsonb      the row as the review shows it and an apply writes it
#include "pg_boundary.hpp"
#include "row_shape.hpp"

namespace envsync {
namespace {

// Kept in fn_extra for the rows of one query, which all have the same type: the row type's
// descriptor and buffers are looked up once, not per row (a hash view reads millions of rows).
struct RecordReader {
    Oid type;
    int32 typmod;
    TupleDesc desc;  // a copy in the query's memory; the row type cannot change during the query
    Datum *values;
    bool *nulls;
};

RecordReader *record_reader(FunctionCallInfo fcinfo, HeapTupleHeader record) {
    auto *reader = static_cast<RecordReader *>(fcinfo->flinfo->fn_extra);
    Oid type = HeapTupleHeaderGetTypeId(record);
    int32 typmod = HeapTupleHeaderGetTypMod(record);
    if (reader && reader->type == type && reader->typmod == typmod)
        return reader;
    MemoryContext query_memory = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
    reader = static_cast<RecordReader *>(palloc(sizeof(RecordReader)));
    TupleDesc desc = lookup_rowtype_tupdesc(type, typmod);
    reader->desc = CreateTupleDescCopy(desc);
    ReleaseTupleDesc(desc);
    reader->type = type;
    reader->typmod = typmod;
    reader->values = static_cast<Datum *>(palloc(reader->desc->natts * sizeof(Datum)));
    reader->nulls = static_cast<bool *>(palloc(reader->desc->natts * sizeof(bool)));
    MemoryContextSwitchTo(query_memory);
    fcinfo->flinfo->fn_extra = reader;
    return reader;
}

// Reads the record argument into the reader's buffers; calls PostgreSQL: inside pg_call().
void deform_record(FunctionCallInfo fcinfo, RecordReader *reader) {
    HeapTupleHeader record = PG_GETARG_HEAPTUPLEHEADER(0);
    HeapTupleData tuple;
    tuple.t_len = HeapTupleHeaderGetDatumLength(record);
    ItemPointerSetInvalid(&tuple.t_self);
    tuple.t_tableOid = InvalidOid;
    tuple.t_data = record;
    heap_deform_tuple(&tuple, reader->desc, reader->values, reader->nulls);
}

Datum hash_of_record(FunctionCallInfo fcinfo) {
    RecordReader *reader = pg_call([&] { return record_reader(fcinfo, PG_GETARG_HEAPTUPLEHEADER(0)); });
    const RowShape &shape = row_shape(reader->desc, false);
    return pg_call([&] {
        deform_record(fcinfo, reader);
        return Int64GetDatum(static_cast<int64>(row_hash(shape, reader->values, reader->nulls)));
    });
}

Datum json_of_record(FunctionCallInfo fcinfo) {
    RecordReader *reader = pg_call([&] { return record_reader(fcinfo, PG_GETARG_HEAPTUPLEHEADER(0)); });
    const RowShape &shape = row_shape(reader->desc, false);
    return pg_call([&] {
        deform_record(fcinfo, reader);
        return row_json(shape, reader->desc, reader->values, reader->nulls);
    });
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_row_hash);
Datum envsync_row_hash(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::hash_of_record(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_row_json);
Datum envsync_row_json(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::json_of_record(fcinfo); });
}
}
