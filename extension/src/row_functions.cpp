// SQL-callable row readers, used by the hash views and by a DBA diffing rows by hand:
//   envsync.row_hash(record) -> bigint     the content hash the change trigger logs
#include "pg_boundary.hpp"
#include "row_shape.hpp"

namespace envsync {
namespace {

Datum hash_of_record(FunctionCallInfo fcinfo) {
    HeapTupleHeader record = pg_call([&] { return PG_GETARG_HEAPTUPLEHEADER(0); });
    TupleDesc desc = pg_call([&] {
        return lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(record),
                                      HeapTupleHeaderGetTypMod(record));
    });
    const RowShape *shape;
    try {
        shape = &row_shape(desc, false);
    } catch (...) {
        pg_call([&] { ReleaseTupleDesc(desc); });
        throw;
    }
    return pg_call([&] {
        HeapTupleData tuple;
        tuple.t_len = HeapTupleHeaderGetDatumLength(record);
        ItemPointerSetInvalid(&tuple.t_self);
        tuple.t_tableOid = InvalidOid;
        tuple.t_data = record;
        Datum *values = static_cast<Datum *>(palloc(desc->natts * sizeof(Datum)));
        bool *nulls = static_cast<bool *>(palloc(desc->natts * sizeof(bool)));
        heap_deform_tuple(&tuple, desc, values, nulls);
        int64 hash = static_cast<int64>(row_hash(*shape, values, nulls));
        ReleaseTupleDesc(desc);
        pfree(values);
        pfree(nulls);
        return Int64GetDatum(hash);
    });
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_row_hash);
Datum envsync_row_hash(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::hash_of_record(fcinfo); });
}
}
