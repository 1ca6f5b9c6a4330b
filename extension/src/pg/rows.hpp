// Reading a row through PostgreSQL's type functions: what each column needs (its hash function,
// its output function, how it appears in JSON), the row's content hash, its JSON form and its
// key. The rules (row_shape.hpp says why): the hash sums each value's hash seeded by the
// column's name; PostgreSQL's own base and range types hash with their type's hash function,
// every other type its text form; text forms are made with the settings that shape them
// pinned. Each function runs its PostgreSQL calls inside pg_call().
#pragma once

#include <cstdint>
#include <vector>

#include "pg/boundary.hpp"

namespace envsync::pg {

// How a column's value appears in a row's JSON form: by its base type.
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

// The readers of a row type's columns, by attribute number - 1; the output functions' caches
// live in memory. Also returns the table of the row type, if it is one.
Oid read_columns(TupleDesc desc, MemoryContext memory, std::vector<ColumnReader> &columns);
// The primary key columns of a table, in key order; an ERROR if it has none.
std::vector<AttrNumber> primary_key(Oid relid);

// A memory context of envsync's own for long-lived caches, deleted with its owner.
class CacheMemory {
public:
    explicit CacheMemory(const char *name);
    ~CacheMemory();
    CacheMemory(CacheMemory &&other) noexcept : context_(other.context_) { other.context_ = nullptr; }
    CacheMemory &operator=(CacheMemory &&other) noexcept;
    CacheMemory(const CacheMemory &) = delete;
    CacheMemory &operator=(const CacheMemory &) = delete;
    MemoryContext get() const { return context_; }

private:
    MemoryContext context_;
};

// The row functions below run inside one pg_call() each (the callers are per-row loops).
uint64_t row_hash(const std::vector<ColumnReader> &columns, const Datum *values, const bool *nulls);
// unguarded::stored_hash below, inside pg_call().
uint64_t stored_hash(const std::vector<ColumnReader> &columns, const Datum *values, const bool *nulls);
Datum row_json(const std::vector<ColumnReader> &columns, TupleDesc desc, const Datum *values, const bool *nulls);
// The key as text[]: each key column's text form.
Datum row_key(const std::vector<ColumnReader> &columns, const std::vector<AttrNumber> &key,
              const Datum *values, const bool *nulls);

// The text form of argument arg of a SQL function (any type), with the settings that shape it
// pinned, as the change trigger writes key texts. The output function is cached in fn_extra.
Datum pinned_text_argument(FunctionCallInfo fcinfo, int arg);

namespace unguarded {
// The same, for callers that already run inside pg_call() (the change trigger).
Datum row_key(const std::vector<ColumnReader> &columns, const std::vector<AttrNumber> &key,
              const Datum *values, const bool *nulls);
bool same_key(const std::vector<ColumnReader> &columns, const std::vector<AttrNumber> &key,
              const Datum *a_values, const bool *a_nulls, const Datum *b_values, const bool *b_nulls);
// A row's hash by its stored values, for the full comparison's bucket digests, where it is
// several times cheaper than row_hash: PostgreSQL's own types hash the bytes of their value
// (detoasted and decompressed), other types their text form as in row_hash. Equal hashes mean
// equal content; content row_hash finds equal may still hash apart (1.5 and 1.50), which only
// costs the bucket a closer look. For callers inside pg_call() (the scan of a table).
uint64_t stored_hash(const std::vector<ColumnReader> &columns, const Datum *values, const bool *nulls);
}  // namespace unguarded

// Calls back with the table's OID (InvalidOid: all tables) whenever a table may have changed.
void on_table_change(void (*callback)(Datum, Oid));

}  // namespace envsync::pg
