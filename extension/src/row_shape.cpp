#include "row_shape.hpp"

#include <unordered_map>

namespace envsync {
namespace {

using ShapeKey = uint64_t;  // row type oid and typmod

std::unordered_map<ShapeKey, RowShape> shapes;
bool callback_registered = false;

// Marks, never erases: the caller of row_shape() may be using the entry right now.
void forget_shapes(Datum, Oid relid) {
    for (auto &entry : shapes)
        if (relid == InvalidOid || entry.second.relid == relid)
            entry.second.stale = true;
}

}  // namespace

const RowShape &row_shape(TupleDesc desc, bool with_key) {
    ShapeKey key = (static_cast<uint64_t>(desc->tdtypeid) << 32) | static_cast<uint32_t>(desc->tdtypmod);
    auto found = shapes.find(key);
    if (found == shapes.end() || found->second.stale || found->second.columns.size() != size_t(desc->natts)) {
        if (!callback_registered) {
            pg::on_table_change(forget_shapes);
            callback_registered = true;
        }
        RowShape shape("envsync row shape");
        shape.relid = pg::read_columns(desc, shape.memory.get(), shape.columns);
        // The shape replaced, its memory (the old output functions' caches) goes with it.
        found = shapes.insert_or_assign(key, std::move(shape)).first;
    }
    RowShape &shape = found->second;
    if (with_key && !shape.has_key) {
        if (!OidIsValid(shape.relid))
            throw UserError(ERRCODE_WRONG_OBJECT_TYPE, "a row without a table has no key");
        shape.key_columns = pg::primary_key(shape.relid);
        shape.has_key = true;
    }
    return shape;
}

}  // namespace envsync
