// How envsync reads a row: its content hash, its JSON form and its key (the primary key, the
// "internal ID"). The shape of a row type (its column readers, pg/rows.hpp) is cached per
// backend until the table changes.
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

#include "pg/rows.hpp"

namespace envsync {

struct RowShape {
    explicit RowShape(const char *name) : memory(name) {}
    bool stale = false;                      // the table changed: read again at the next lookup
    Oid relid = InvalidOid;                  // the table whose rows these are, if any
    pg::CacheMemory memory;                  // the output functions' caches
    std::vector<pg::ColumnReader> columns;   // by attribute number - 1
    bool has_key = false;
    std::vector<AttrNumber> key_columns;     // primary key columns in key order
    // The table's id in envsync.tracked_tables, looked up by the change trigger on first use
    // (0: not tracked; -1: not looked up yet). Forgotten with the shape when the table changes.
    mutable int32 tracked_id = -1;
};

// The shape of rows of this descriptor, with the table's primary key when with_key is set. The
// reference stays valid until the next call: an invalidation arriving meanwhile (any catalog
// access can deliver one) only marks it stale.
const RowShape &row_shape(TupleDesc desc, bool with_key);

}  // namespace envsync
