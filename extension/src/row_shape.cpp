#include "row_shape.hpp"

#include <unordered_map>

#include "pg_boundary.hpp"

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

// Keeps a NULL apart from any value of the column.
constexpr uint64_t null_marker = 0x9e3779b97f4a7c15ULL;

// A strong 64-bit mix (the finalizer of MurmurHash3): column hashes are summed, so each must
// be spread over all bits.
uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

// Whether a type's values hash the same on every server with the type's own hash function:
// PostgreSQL's own base and range types, arrays of them included (a domain by its base type).
// The same rule decides which columns another environment's rows are read with as they are
// (envsync.transport_type), so that both sides of a comparison hash a value the same way.
bool hashes_natively(Oid type) {
    type = getBaseType(type);
    char kind = get_typtype(type);
    return type < FirstNormalObjectId && (kind == TYPTYPE_BASE || kind == TYPTYPE_RANGE);
}

pg_tz *utc_zone() {
    static pg_tz *utc = nullptr;
    if (utc == nullptr)
        utc = pg_tzset("UTC");
    return utc;
}

}  // namespace

char *text_form(const FmgrInfo &output, Datum value) {
    int date_style = DateStyle, date_order = DateOrder, interval_style = IntervalStyle;
    int float_digits = extra_float_digits, bytea_format = bytea_output;
    pg_tz *zone = session_timezone;
    pg_tz *utc = utc_zone();
    char *volatile text = nullptr;
    PG_TRY();
    {
        DateStyle = USE_ISO_DATES;
        DateOrder = DATEORDER_YMD;
        IntervalStyle = INTSTYLE_POSTGRES;
        extra_float_digits = 1;  // the shortest text that reads back exactly
        bytea_output = BYTEA_OUTPUT_HEX;
        if (utc)
            session_timezone = utc;
        text = OutputFunctionCall(const_cast<FmgrInfo *>(&output), value);
    }
    PG_FINALLY();
    {
        DateStyle = date_style;
        DateOrder = date_order;
        IntervalStyle = interval_style;
        extra_float_digits = float_digits;
        bytea_output = bytea_format;
        session_timezone = zone;
    }
    PG_END_TRY();
    return text;
}

namespace {

RowShape read_columns(TupleDesc desc) {
    RowShape shape;
    shape.columns.resize(desc->natts);
    ColumnReader *columns = shape.columns.data();
    shape.relid = pg_call([&] {
        for (int i = 0; i < desc->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            columns[i].dropped = att->attisdropped;
            if (att->attisdropped)
                continue;
            columns[i].collation = att->attcollation;
            switch (getBaseType(att->atttypid)) {
                case INT2OID: case INT4OID: case INT8OID: case NUMERICOID: case FLOAT4OID: case FLOAT8OID:
                    columns[i].json_kind = JsonKind::number;
                    break;
                case BOOLOID:
                    columns[i].json_kind = JsonKind::boolean;
                    break;
                case JSONBOID:
                    columns[i].json_kind = JsonKind::jsonb;
                    break;
                case JSONOID:
                    columns[i].json_kind = JsonKind::json;
                    break;
                default:
                    break;
            }
            columns[i].typlen = att->attlen;
            columns[i].typbyval = att->attbyval;
            const char *name = NameStr(att->attname);
            columns[i].name_seed = hash_bytes_extended(reinterpret_cast<const unsigned char *>(name),
                                                       strlen(name), 0);
            if (hashes_natively(att->atttypid)) {
                TypeCacheEntry *type = lookup_type_cache(att->atttypid, TYPECACHE_HASH_EXTENDED_PROC_FINFO);
                if (OidIsValid(type->hash_extended_proc))
                    columns[i].hash_fn = &type->hash_extended_proc_finfo;
            }
            Oid output_fn;
            bool varlena;
            getTypeOutputInfo(att->atttypid, &output_fn, &varlena);
            fmgr_info_cxt(output_fn, &columns[i].output, TopMemoryContext);
        }
        return desc->tdtypeid == RECORDOID ? InvalidOid : get_typ_typrelid(desc->tdtypeid);
    });
    return shape;
}

void read_key(RowShape &shape) {
    if (!OidIsValid(shape.relid))
        throw UserError(ERRCODE_WRONG_OBJECT_TYPE, "a row without a table has no key");
    // Filled in by the catalog lookup, then copied out: no C++ object lives in the guard.
    AttrNumber attnums[INDEX_MAX_KEYS];
    Oid relid = shape.relid;
    int nkeys = pg_call([&] {
        Relation rel = relation_open(relid, AccessShareLock);
        Oid pk = RelationGetPrimaryKeyIndex(rel);
        relation_close(rel, AccessShareLock);
        if (!OidIsValid(pk))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("table \"%s\" has no primary key", get_rel_name(relid))));
        HeapTuple index_tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
        auto index = reinterpret_cast<Form_pg_index>(GETSTRUCT(index_tuple));
        int n = index->indnkeyatts;
        for (int i = 0; i < n; i++)
            attnums[i] = index->indkey.values[i];
        ReleaseSysCache(index_tuple);
        return n;
    });
    shape.key_columns.assign(attnums, attnums + nkeys);
    shape.has_key = true;
}

}  // namespace

const RowShape &row_shape(TupleDesc desc, bool with_key) {
    ShapeKey key = (static_cast<uint64_t>(desc->tdtypeid) << 32) |
                   static_cast<uint32_t>(desc->tdtypmod);
    auto found = shapes.find(key);
    if (found == shapes.end() || found->second.stale || found->second.columns.size() != size_t(desc->natts)) {
        if (!callback_registered) {
            pg_call([] { CacheRegisterRelcacheCallback(forget_shapes, Datum(0)); });
            callback_registered = true;
        }
        found = shapes.insert_or_assign(key, read_columns(desc)).first;
    }
    if (with_key && !found->second.has_key)
        read_key(found->second);
    return found->second;
}

uint64_t row_hash(const RowShape &shape, const Datum *values, const bool *nulls) {
    uint64_t hash = 0;
    for (size_t i = 0; i < shape.columns.size(); i++) {
        const ColumnReader &column = shape.columns[i];
        if (column.dropped)
            continue;
        uint64_t seed = column.name_seed;
        uint64_t value_hash;
        if (nulls[i]) {
            value_hash = seed ^ null_marker;
        } else if (column.hash_fn) {
            value_hash = DatumGetUInt64(FunctionCall2Coll(column.hash_fn, column.collation,
                                                          values[i], UInt64GetDatum(seed)));
        } else {
            char *text = text_form(column.output, values[i]);
            value_hash = hash_bytes_extended(reinterpret_cast<const unsigned char *>(text),
                                             strlen(text), seed);
            pfree(text);
        }
        hash += mix(value_hash ^ seed);  // a sum: the order of the columns plays no part
    }
    return hash;
}

Datum row_key(const RowShape &shape, const Datum *values, const bool *nulls) {
    Datum parts[INDEX_MAX_KEYS];
    int n = 0;
    for (AttrNumber attnum : shape.key_columns) {
        int i = attnum - 1;
        if (nulls[i])  // a primary key column is never NULL; a composite given by hand may be
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("key column %d is null", attnum)));
        char *text = OutputFunctionCall(const_cast<FmgrInfo *>(&shape.columns[i].output), values[i]);
        parts[n++] = CStringGetTextDatum(text);
    }
    return PointerGetDatum(construct_array(parts, n, TEXTOID, -1, false, TYPALIGN_INT));
}

namespace {

JsonbValue json_string(const char *text) {
    JsonbValue value;
    value.type = jbvString;
    value.val.string.val = const_cast<char *>(text);
    value.val.string.len = static_cast<int>(strlen(text));
    return value;
}

JsonbValue json_value(const ColumnReader &column, Datum datum) {
    JsonbValue value;
    if (column.json_kind == JsonKind::boolean) {
        value.type = jbvBool;
        value.val.boolean = DatumGetBool(datum);
        return value;
    }
    if (column.json_kind == JsonKind::jsonb) {
        Jsonb *document = DatumGetJsonbP(datum);
        value.type = jbvBinary;
        value.val.binary.data = &document->root;
        value.val.binary.len = static_cast<int>(VARSIZE(document) - VARHDRSZ);
        return value;
    }
    char *text = text_form(column.output, datum);
    // NaN and the infinities have no JSON number: they stay strings, as to_jsonb keeps them.
    if (column.json_kind == JsonKind::number && strcmp(text, "NaN") != 0 && strcmp(text, "Infinity") != 0 &&
        strcmp(text, "-Infinity") != 0) {
        value.type = jbvNumeric;
        value.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
                                                                ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
        return value;
    }
    return json_string(text);
}

}  // namespace

Datum row_json(const RowShape &shape, TupleDesc desc, const Datum *values, const bool *nulls) {
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (size_t i = 0; i < shape.columns.size(); i++) {
        if (shape.columns[i].dropped)
            continue;
        JsonbValue name = json_string(NameStr(TupleDescAttr(desc, i)->attname));
        pushJsonbValue(&state, WJB_KEY, &name);
        JsonbValue value;
        if (nulls[i])
            value.type = jbvNull;
        else
            value = json_value(shape.columns[i], values[i]);
        pushJsonbValue(&state, WJB_VALUE, &value);
    }
    JsonbValue *object = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    return JsonbPGetDatum(JsonbValueToJsonb(object));
}

bool same_key(const RowShape &shape, const Datum *a_values, const bool *a_nulls,
              const Datum *b_values, const bool *b_nulls) {
    for (AttrNumber attnum : shape.key_columns) {
        int i = attnum - 1;
        if (a_nulls[i] != b_nulls[i])
            return false;
        if (!a_nulls[i] && !datumIsEqual(a_values[i], b_values[i], shape.columns[i].typbyval,
                                         shape.columns[i].typlen))
            return false;
    }
    return true;
}

}  // namespace envsync
