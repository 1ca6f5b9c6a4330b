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

}  // namespace envsync::pg
