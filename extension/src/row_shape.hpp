// How envsync reads a row: its content hash, its JSON form and its key (the primary key,
// the "internal ID").
//
// The content hash sums, column by column, each value's hash seeded by the column's name: it
// follows names, types and values, never the physical layout (dropped columns, or columns in
// another order on the other server, change nothing). Values of PostgreSQL's own types hash
// with the type's extended hash function (the one behind its hash opclass), so equal values by
// PostgreSQL's equality hash alike: 1.5 and 1.50, jsonb with keys in another order, one instant
// in two time zones, an interval written two ways. Every other type (enum, composite, range of
// a type of the shop's, types without a hash opclass such as json and point) hashes its text
// form, the one representation two servers share (an enum's OIDs differ between them). Text
// forms are made with the session settings that shape them pinned (DateStyle, TimeZone,
// IntervalStyle, extra_float_digits, bytea_output), so no session setting is ever involved.
#pragma once

#include <cstdint>
#include <vector>

#include "pg_headers.hpp"

namespace envsync {

// How a column's value appears in a row's JSON form (row_json): by its base type.
enum class JsonKind : uint8_t { text, number, boolean, json, jsonb };

struct ColumnReader {
    bool dropped = false;
    JsonKind json_kind = JsonKind::text;
    Oid collation = InvalidOid;
    int16 typlen = 0;
    bool typbyval = false;
    uint64_t name_seed = 0;       // the hash of the column's name
    FmgrInfo *hash_fn = nullptr;  // the type cache's; nullptr: hash the text form instead
    FmgrInfo output{};            // for the text form, the JSON form and key columns
};

struct RowShape {
    bool stale = false;                 // the table changed: read again at the next lookup
    Oid relid = InvalidOid;             // the table whose rows these are, if any
    std::vector<ColumnReader> columns;  // by attribute number - 1
    bool has_key = false;
    std::vector<AttrNumber> key_columns;  // primary key columns in key order
    // The table's id in envsync.tracked_tables, looked up by the change trigger on first use
    // (0: not tracked; -1: not looked up yet). Forgotten with the shape when the table changes.
    mutable int32 tracked_id = -1;
};

// The shape of rows of this descriptor, with the table's primary key when with_key is set.
// Cached per backend until the table changes. The reference stays valid until the next call:
// an invalidation arriving meanwhile (any catalog access can deliver one) only marks it stale.
const RowShape &row_shape(TupleDesc desc, bool with_key);

// The functions below call PostgreSQL directly: run them inside pg_call().
// A value's text form, with the session settings that shape it pinned (palloc'd).
char *text_form(const FmgrInfo &output, Datum value);
uint64_t row_hash(const RowShape &shape, const Datum *values, const bool *nulls);
// The key as text[]: each key column's text output (key types are restricted to those whose
// output does not depend on session settings, see sync_add_module).
Datum row_key(const RowShape &shape, const Datum *values, const bool *nulls);
// The row as a jsonb object keyed by column name: numbers and booleans as JSON values, jsonb as
// it is, everything else (json included) as a string of its type's output function, which its
// input function reads back exactly. Only output functions run: never a cast, so no user code.
Datum row_json(const RowShape &shape, TupleDesc desc, const Datum *values, const bool *nulls);
// Whether two rows have the same key (binary equality is exact for the allowed key types).
bool same_key(const RowShape &shape, const Datum *a_values, const bool *a_nulls,
              const Datum *b_values, const bool *b_nulls);

}  // namespace envsync
