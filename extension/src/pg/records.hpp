// The record argument of a SQL function (envsync.row_hash(t), envsync.row_json(t)), deformed
// into buffers kept in fn_extra for the rows of one query, which all have the same type: the row
// type's descriptor is looked up once, not per row (a full comparison hashes millions of rows).
#pragma once

#include "pg/boundary.hpp"

namespace envsync::pg {

struct RecordValues {
    TupleDesc desc;  // a copy in the query's memory; the row type cannot change during the query
    Datum *values;
    bool *nulls;
};

// The record argument arg, deformed (inside pg_call()).
RecordValues record_argument(FunctionCallInfo fcinfo, int arg);

}  // namespace envsync::pg
