#include "pg/records.hpp"

namespace envsync::pg {
namespace {

struct RecordReader {
    Oid type;
    int32 typmod;
    RecordValues row;
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
    reader->row.desc = CreateTupleDescCopy(desc);
    ReleaseTupleDesc(desc);
    reader->type = type;
    reader->typmod = typmod;
    reader->row.values = static_cast<Datum *>(palloc(reader->row.desc->natts * sizeof(Datum)));
    reader->row.nulls = static_cast<bool *>(palloc(reader->row.desc->natts * sizeof(bool)));
    MemoryContextSwitchTo(query_memory);
    fcinfo->flinfo->fn_extra = reader;
    return reader;
}

}  // namespace

RecordValues record_argument(FunctionCallInfo fcinfo, int arg) {
    return pg_call([&] {
        HeapTupleHeader record = PG_GETARG_HEAPTUPLEHEADER(arg);
        RecordReader *reader = record_reader(fcinfo, record);
        HeapTupleData tuple;
        tuple.t_len = HeapTupleHeaderGetDatumLength(record);
        ItemPointerSetInvalid(&tuple.t_self);
        tuple.t_tableOid = InvalidOid;
        tuple.t_data = record;
        heap_deform_tuple(&tuple, reader->row.desc, reader->row.values, reader->row.nulls);
        return reader->row;
    });
}

}  // namespace envsync::pg
