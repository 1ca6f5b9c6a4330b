// SQL functions' arguments and results (set-returning ones as tuplestores), texts and arrays of
// text, through PostgreSQL. Each function runs its PostgreSQL calls inside pg_call().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pg/boundary.hpp"

namespace envsync::pg {

// The function's result as a tuplestore, which spills to disk past work_mem.
ReturnSetInfo *materialized_result(FunctionCallInfo fcinfo);
void put_row(ReturnSetInfo *result, Datum *values, bool *nulls);
// Appends the rows the last SPI statement or fetch returned (they must match the result's columns).
void put_statement_rows(ReturnSetInfo *result, uint64_t count);

std::string text_argument(FunctionCallInfo fcinfo, int arg);
Datum text_datum(const char *text);
Datum text_array(Datum *items, int count);
// The elements of a text[] argument; an ERROR for a NULL element (hint: the form keys take).
int text_array_argument(FunctionCallInfo fcinfo, int arg, Datum **items);
// The elements of a bigint[] argument; an ERROR for a NULL element.
std::vector<int64> bigint_array_argument(FunctionCallInfo fcinfo, int arg);
// Frees values made here (text_datum(), text_array()) once no longer needed.
void free_values(const Datum *items, size_t count);

}  // namespace envsync::pg
