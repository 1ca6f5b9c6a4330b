// Reading the rows of a table straight from its table access method (all of them) or its primary
// key (ranges of keys), for the full comparison: no executor, no planner, and no whole-row value
// made for each row (the row's columns are hashed where they lie). The caller acts as the
// table's owner (pg/owner.hpp), whose SELECT right is checked and whose row security policies,
// if any apply, are an ERROR.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "pg/boundary.hpp"

namespace envsync::pg {

// Only the rows whose column (of type text) is LIKE the pattern, by the column's collation; no
// filter when the column is empty.
struct RowFilter {
    std::string column;
    std::string pattern;
};

// Scans the table's rows under the active snapshot: those of every partition of a partitioned
// table. For each table with storage, table(desc) is called once, then row(values, nulls) for
// each of its rows (memory a row allocates is freed after it). Runs in one pg_call().
void scan_rows(Oid relid, const RowFilter &filter, const std::function<void(TupleDesc)> &table,
               const std::function<void(const Datum *, const bool *)> &row);

// An inclusive range of keys.
struct KeyRange {
    int64 low;
    int64 high;
};

// The same for the rows whose key lies in one of the ranges, read through the primary key (one
// integer column) of each table with storage, the ranges in key order.
void scan_key_ranges(Oid relid, const RowFilter &filter, std::vector<KeyRange> ranges,
                     const std::function<void(TupleDesc)> &table,
                     const std::function<void(const Datum *, const bool *)> &row);

// The index (attribute number - 1) of a column of a table, by name; an ERROR if it has none.
int column_index(TupleDesc desc, const std::string &name);

}  // namespace envsync::pg
