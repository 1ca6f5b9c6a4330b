#include "pg/results.hpp"

namespace envsync::pg {

ReturnSetInfo *materialized_result(FunctionCallInfo fcinfo) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    return reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
}

void put_row(ReturnSetInfo *result, Datum *values, bool *nulls) {
    pg_call([&] { tuplestore_putvalues(result->setResult, result->setDesc, values, nulls); });
}

void put_statement_rows(ReturnSetInfo *result, uint64_t count) {
    pg_call([&] {
        for (uint64_t i = 0; i < count; i++)
            tuplestore_puttuple(result->setResult, SPI_tuptable->vals[i]);
    });
}

std::string text_argument(FunctionCallInfo fcinfo, int arg) {
    return std::string(pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(arg)); }));
}

Datum text_datum(const char *text) {
    return pg_call([&] { return CStringGetTextDatum(text); });
}

Datum text_array(Datum *items, int count) {
    return pg_call([&] { return PointerGetDatum(construct_array(items, count, TEXTOID, -1, false, TYPALIGN_INT)); });
}

int text_array_argument(FunctionCallInfo fcinfo, int arg, Datum **items) {
    return pg_call([&] {
        bool *nulls;
        int count;
        deconstruct_array(PG_GETARG_ARRAYTYPE_P(arg), TEXTOID, -1, false, TYPALIGN_INT, items, &nulls, &count);
        for (int i = 0; i < count; i++)
            if (nulls[i])
                ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("keys must not contain NULL"),
                                errhint("Give each key as the text of its text[] form, like '{42}'.")));
        return count;
    });
}

std::vector<int64> bigint_array_argument(FunctionCallInfo fcinfo, int arg) {
    Datum *items;
    int count = pg_call([&] {
        bool *nulls;
        int n;
        deconstruct_array(PG_GETARG_ARRAYTYPE_P(arg), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &items, &nulls, &n);
        for (int i = 0; i < n; i++)
            if (nulls[i])
                ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("the array must not contain NULL")));
        return n;
    });
    std::vector<int64> values(static_cast<size_t>(count));
    for (int i = 0; i < count; i++)
        values[i] = DatumGetInt64(items[i]);
    return values;
}

void free_values(const Datum *items, size_t count) {
    pg_call([&] {
        for (size_t i = 0; i < count; i++)
            pfree(DatumGetPointer(items[i]));
    });
}

}  // namespace envsync::pg
