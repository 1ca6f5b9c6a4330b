#include "pg/rows.hpp"

namespace envsync::pg {
namespace {

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

// A fast 64-bit hash of bytes for the stored hash. Its step multiplies two 64-bit words into
// 128 bits and folds the halves together (xor): 16 bytes a multiplication. Long values go
// through two independent lanes (so that the processor runs them at once), 32 bytes a step; the
// last 1 to 16 bytes are read as two overlapping words, which, the length being folded in,
// tell every tail apart. Loads are memcpy'd, so alignment plays no part.
uint64_t fold_multiply(uint64_t a, uint64_t b) {
    unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
    return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

uint64_t load64(const unsigned char *at) {
    uint64_t word;
    memcpy(&word, at, 8);
    return word;
}

uint64_t load32(const unsigned char *at) {
    uint32_t word;
    memcpy(&word, at, 4);
    return word;
}

uint64_t bytes_hash(const unsigned char *bytes, size_t length, uint64_t seed) {
    constexpr uint64_t k1 = 0x9e3779b97f4a7c15ULL, k2 = 0xc2b2ae3d27d4eb4fULL,
                       k3 = 0x165667b19e3779f9ULL, k4 = 0xd6e8feb86659fd93ULL;
    uint64_t h = seed ^ (length * k2) ^ k1;
    size_t i = 0;
    if (length > 32) {
        uint64_t other = h ^ k3;
        for (; i + 32 < length; i += 32) {
            h = fold_multiply(load64(bytes + i) ^ k1, load64(bytes + i + 8) ^ h);
            other = fold_multiply(load64(bytes + i + 16) ^ k3, load64(bytes + i + 24) ^ other);
        }
        h = fold_multiply(h ^ k2, other ^ k4);
    }
    for (; i + 16 < length; i += 16)
        h = fold_multiply(load64(bytes + i) ^ k1, load64(bytes + i + 8) ^ h);
    size_t rest = length - i;  // 0 only for an empty value
    uint64_t low = 0, high = 0;
    if (rest >= 8) {
        low = load64(bytes + i);
        high = load64(bytes + i + rest - 8);
    } else if (rest >= 4) {
        low = load32(bytes + i);
        high = load32(bytes + i + rest - 4);
    } else if (rest > 0) {
        low = (uint64_t(bytes[i]) << 16) | (uint64_t(bytes[i + rest / 2]) << 8) | bytes[i + rest - 1];
    }
    return fold_multiply(low ^ k3, high ^ h ^ k4);  // mixed as each column's hash is
}

// Whether a type's values hash the same on every server with the type's own hash function:
// PostgreSQL's own base and range types, arrays of them included (a domain by its base type).
// An enum's hash follows its OIDs, which differ between servers; the shop's own types may hash
// anyhow.
bool hashes_natively(Oid type) {
    type = getBaseType(type);
    char kind = get_typtype(type);
    return type < FirstNormalObjectId && (kind == TYPTYPE_BASE || kind == TYPTYPE_RANGE);
}

JsonKind json_kind(Oid type) {
    switch (getBaseType(type)) {
        case INT2OID: case INT4OID: case INT8OID: case NUMERICOID: case FLOAT4OID: case FLOAT8OID:
            return JsonKind::number;
        case BOOLOID:
            return JsonKind::boolean;
        case JSONBOID:
            return JsonKind::jsonb;
        case JSONOID:
            return JsonKind::json;
        default:
            return JsonKind::text;
    }
}

pg_tz *utc_zone() {
    static pg_tz *utc = nullptr;
    if (utc == nullptr)
        utc = pg_tzset("UTC");
    return utc;
}

// A value's text form, with the session settings that shape it pinned (palloc'd).
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

Oid read_columns(TupleDesc desc, MemoryContext memory, std::vector<ColumnReader> &columns) {
    columns.assign(desc->natts, ColumnReader{});
    ColumnReader *readers = columns.data();
    return pg_call([&] {
        for (int i = 0; i < desc->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            readers[i].dropped = att->attisdropped;
            if (att->attisdropped)
                continue;
            readers[i].collation = att->attcollation;
            readers[i].typlen = att->attlen;
            readers[i].typbyval = att->attbyval;
            readers[i].json_kind = json_kind(att->atttypid);
            const char *name = NameStr(att->attname);
            readers[i].name_seed = hash_bytes_extended(reinterpret_cast<const unsigned char *>(name), strlen(name), 0);
            // money has no hash function, and its text follows lc_monetary: hashed as the int8
            // it is (pass-by-value like int8 wherever money is).
            Oid hashed_as = getBaseType(att->atttypid) == CASHOID ? INT8OID : att->atttypid;
            if (hashes_natively(hashed_as)) {
                TypeCacheEntry *type = lookup_type_cache(hashed_as, TYPECACHE_HASH_EXTENDED_PROC_FINFO);
                if (OidIsValid(type->hash_extended_proc))
                    readers[i].hash_fn = &type->hash_extended_proc_finfo;
            }
            Oid output_fn;
            bool varlena;
            getTypeOutputInfo(att->atttypid, &output_fn, &varlena);
            fmgr_info_cxt(output_fn, &readers[i].output, memory);
        }
        return desc->tdtypeid == RECORDOID ? InvalidOid : get_typ_typrelid(desc->tdtypeid);
    });
}

std::vector<AttrNumber> primary_key(Oid relid) {
    AttrNumber attnums[INDEX_MAX_KEYS];
    int n = pg_call([&] {
        Relation rel = relation_open(relid, AccessShareLock);
        Oid pk = RelationGetPrimaryKeyIndex(rel);
        relation_close(rel, AccessShareLock);
        if (!OidIsValid(pk))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("table \"%s\" has no primary key", get_rel_name(relid))));
        HeapTuple index_tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
        auto index = reinterpret_cast<Form_pg_index>(GETSTRUCT(index_tuple));
        int count = index->indnkeyatts;
        for (int i = 0; i < count; i++)
            attnums[i] = index->indkey.values[i];
        ReleaseSysCache(index_tuple);
        return count;
    });
    return std::vector<AttrNumber>(attnums, attnums + n);
}

CacheMemory::CacheMemory(const char *name)
    // AllocSetContextCreateInternal: the name is a string literal that lives as long as the context.
    : context_(pg_call([&] { return AllocSetContextCreateInternal(TopMemoryContext, name, ALLOCSET_SMALL_SIZES); })) {}

// MemoryContextDelete raises no ERROR: safe in a destructor.
CacheMemory::~CacheMemory() {
    if (context_)
        MemoryContextDelete(context_);
}

CacheMemory &CacheMemory::operator=(CacheMemory &&other) noexcept {
    if (this != &other) {
        if (context_)
            MemoryContextDelete(context_);
        context_ = other.context_;
        other.context_ = nullptr;
    }
    return *this;
}

namespace {

// A row's hash: the sum, column by column, of each value's hash seeded by the column's name
// (the order of the columns plays no part); value_hash(column, value, seed) hashes a value
// that is not NULL.
template <typename ValueHash>
uint64_t sum_of_columns(const std::vector<ColumnReader> &columns, const Datum *values, const bool *nulls,
                        ValueHash value_hash) {
    uint64_t hash = 0;
    for (size_t i = 0; i < columns.size(); i++) {
        const ColumnReader &column = columns[i];
        if (column.dropped)
            continue;
        uint64_t seed = column.name_seed;
        uint64_t h = nulls[i] ? seed ^ null_marker : value_hash(column, values[i], seed);
        hash += mix(h ^ seed);
    }
    return hash;
}

uint64_t text_hash(const ColumnReader &column, Datum value, uint64_t seed,
                   uint64_t (*bytes)(const unsigned char *, size_t, uint64_t)) {
    char *text = text_form(column.output, value);
    uint64_t h = bytes(reinterpret_cast<const unsigned char *>(text), strlen(text), seed);
    pfree(text);
    return h;
}

uint64_t hash_bytes_seeded(const unsigned char *bytes, size_t length, uint64_t seed) {
    return hash_bytes_extended(bytes, static_cast<int>(length), seed);
}

}  // namespace

uint64_t row_hash(const std::vector<ColumnReader> &columns, const Datum *values, const bool *nulls) {
    return pg_call([&] {
        return sum_of_columns(columns, values, nulls, [](const ColumnReader &column, Datum value, uint64_t seed) {
            if (column.hash_fn)
                return DatumGetUInt64(FunctionCall2Coll(column.hash_fn, column.collation, value, UInt64GetDatum(seed)));
            return text_hash(column, value, seed, hash_bytes_seeded);
        });
    });
}

namespace unguarded {

uint64_t stored_hash(const std::vector<ColumnReader> &columns, const Datum *values, const bool *nulls) {
    return sum_of_columns(columns, values, nulls, [](const ColumnReader &column, Datum value, uint64_t seed) {
        if (!column.hash_fn)  // not one of PostgreSQL's own types: its text, as row_hash does
            return text_hash(column, value, seed, bytes_hash);
        if (column.typbyval)  // mixed as each column's hash is
            return static_cast<uint64_t>(value) + seed;
        if (column.typlen > 0)
            return bytes_hash(reinterpret_cast<const unsigned char *>(DatumGetPointer(value)), column.typlen, seed);
        if (column.typlen == -1) {
            // the value itself, whatever its compression or storage on either server
            struct varlena *stored = pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(value)));
            return bytes_hash(reinterpret_cast<const unsigned char *>(VARDATA_ANY(stored)), VARSIZE_ANY_EXHDR(stored), seed);
        }
        const char *text = DatumGetCString(value);
        return bytes_hash(reinterpret_cast<const unsigned char *>(text), strlen(text), seed);
    });
}

}  // namespace unguarded

uint64_t stored_hash(const std::vector<ColumnReader> &columns, const Datum *values, const bool *nulls) {
    return pg_call([&] { return unguarded::stored_hash(columns, values, nulls); });
}

Datum row_json(const std::vector<ColumnReader> &columns, TupleDesc desc, const Datum *values, const bool *nulls) {
    return pg_call([&] {
        JsonbParseState *state = nullptr;
        pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
        for (size_t i = 0; i < columns.size(); i++) {
            if (columns[i].dropped)
                continue;
            JsonbValue name = json_string(NameStr(TupleDescAttr(desc, i)->attname));
            pushJsonbValue(&state, WJB_KEY, &name);
            JsonbValue value;
            if (nulls[i])
                value.type = jbvNull;
            else
                value = json_value(columns[i], values[i]);
            pushJsonbValue(&state, WJB_VALUE, &value);
        }
        JsonbValue *object = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
        return JsonbPGetDatum(JsonbValueToJsonb(object));
    });
}

Datum row_key(const std::vector<ColumnReader> &columns, const std::vector<AttrNumber> &key,
              const Datum *values, const bool *nulls) {
    return pg_call([&] { return unguarded::row_key(columns, key, values, nulls); });
}

Datum pinned_text_argument(FunctionCallInfo fcinfo, int arg) {
    return pg_call([&] {
        auto *output = static_cast<FmgrInfo *>(fcinfo->flinfo->fn_extra);
        if (output == nullptr) {
            Oid output_fn;
            bool varlena;
            getTypeOutputInfo(get_fn_expr_argtype(fcinfo->flinfo, arg), &output_fn, &varlena);
            output = static_cast<FmgrInfo *>(MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FmgrInfo)));
            fmgr_info_cxt(output_fn, output, fcinfo->flinfo->fn_mcxt);
            fcinfo->flinfo->fn_extra = output;
        }
        char *text = text_form(*output, PG_GETARG_DATUM(arg));
        Datum result = CStringGetTextDatum(text);
        pfree(text);
        return result;
    });
}

namespace unguarded {

Datum row_key(const std::vector<ColumnReader> &columns, const std::vector<AttrNumber> &key,
              const Datum *values, const bool *nulls) {
    Datum parts[INDEX_MAX_KEYS];
    int n = 0;
    for (AttrNumber attnum : key) {
        int i = attnum - 1;
        if (nulls[i])  // a primary key column is never NULL; a composite given by hand may be
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("key column %d is null", attnum)));
        parts[n++] = CStringGetTextDatum(text_form(columns[i].output, values[i]));
    }
    return PointerGetDatum(construct_array(parts, n, TEXTOID, -1, false, TYPALIGN_INT));
}

bool same_key(const std::vector<ColumnReader> &columns, const std::vector<AttrNumber> &key,
              const Datum *a_values, const bool *a_nulls, const Datum *b_values, const bool *b_nulls) {
    for (AttrNumber attnum : key) {
        int i = attnum - 1;
        if (a_nulls[i] != b_nulls[i])
            return false;
        if (!a_nulls[i] && !datumIsEqual(a_values[i], b_values[i], columns[i].typbyval, columns[i].typlen))
            return false;
    }
    return true;
}

}  // namespace unguarded

void on_table_change(void (*callback)(Datum, Oid)) {
    pg_call([&] { CacheRegisterRelcacheCallback(callback, Datum(0)); });
}

}  // namespace envsync::pg
