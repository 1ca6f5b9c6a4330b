#include "pg/scan.hpp"

#include <algorithm>

namespace envsync::pg {
namespace {

// The filter column's number in one table (partitions may place it elsewhere), 0 for none.
AttrNumber filter_attnum(Relation rel, const RowFilter &filter) {
    if (filter.column.empty())
        return 0;
    AttrNumber attnum = get_attnum(RelationGetRelid(rel), filter.column.c_str());
    if (attnum == InvalidAttrNumber)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("table \"%s\" has no column \"%s\" to filter on", RelationGetRelationName(rel),
                               filter.column.c_str())));
    return attnum;
}

using RowCallback = std::function<void(const Datum *, const bool *)>;

// Hands the rows of one table that pass the filter to the callback, the memory each allocates
// freed after it.
struct RowSink {
    AttrNumber filtered;  // 0: no filter
    Oid collation;
    Datum pattern;
    MemoryContext row_memory;
    const RowCallback &row;

    void take(TupleTableSlot *slot) const {
        CHECK_FOR_INTERRUPTS();
        slot_getallattrs(slot);
        MemoryContext caller = MemoryContextSwitchTo(row_memory);
        if (!filtered || (!slot->tts_isnull[filtered - 1] &&
                          DatumGetBool(DirectFunctionCall2Coll(textlike, collation, slot->tts_values[filtered - 1], pattern))))
            row(slot->tts_values, slot->tts_isnull);
        MemoryContextSwitchTo(caller);
        MemoryContextReset(row_memory);
    }
};

// Calls read(rel, sink) for the table and each of its partitions with storage, after the checks
// a query of the table would make, in one pg_call().
template <typename Read>
void read_tables(Oid relid, const RowFilter &filter, const std::function<void(TupleDesc)> &table,
                 const RowCallback &row, const Read &read) {
    pg_call([&] {
        // What a query of the table would check: the right to read it, and that no row security
        // policy applies (row_security is off: check_enable_rls raises the ERROR).
        AclResult allowed = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
        if (allowed != ACLCHECK_OK)
            aclcheck_error(allowed, OBJECT_TABLE, get_rel_name(relid));
        check_enable_rls(relid, InvalidOid, false);
        List *tables = find_all_inheritors(relid, AccessShareLock, nullptr);
        Datum pattern = filter.column.empty() ? Datum(0) : CStringGetTextDatum(filter.pattern.c_str());
        MemoryContext row_memory = AllocSetContextCreate(CurrentMemoryContext, "envsync scanned row", ALLOCSET_DEFAULT_SIZES);
        ListCell *cell;
        foreach (cell, tables) {
            Oid part = lfirst_oid(cell);
            if (!RELKIND_HAS_STORAGE(get_rel_relkind(part)))
                continue;
            Relation rel = table_open(part, NoLock);  // locked above
            AttrNumber filtered = filter_attnum(rel, filter);
            Oid collation = filtered ? TupleDescAttr(RelationGetDescr(rel), filtered - 1)->attcollation : InvalidOid;
            table(RelationGetDescr(rel));
            read(rel, RowSink{filtered, collation, pattern, row_memory, row});
            table_close(rel, NoLock);
        }
        MemoryContextDelete(row_memory);
    });
}

}  // namespace

int column_index(TupleDesc desc, const std::string &name) {
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (!att->attisdropped && name == NameStr(att->attname))
            return i;
    }
    throw UserError(ERRCODE_UNDEFINED_COLUMN, "column \"" + name + "\" does not exist");
}

void scan_rows(Oid relid, const RowFilter &filter, const std::function<void(TupleDesc)> &table, const RowCallback &row) {
    read_tables(relid, filter, table, row, [](Relation rel, const RowSink &sink) {
        TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, nullptr);
        TupleTableSlot *slot = table_slot_create(rel, nullptr);
        while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
            sink.take(slot);
        ExecDropSingleTupleTableSlot(slot);
        table_endscan(scan);
    });
}

void scan_key_ranges(Oid relid, const RowFilter &filter, std::vector<KeyRange> ranges,
                     const std::function<void(TupleDesc)> &table, const RowCallback &row) {
    std::sort(ranges.begin(), ranges.end(), [](const KeyRange &a, const KeyRange &b) { return a.low < b.low; });
    read_tables(relid, filter, table, row, [&](Relation rel, const RowSink &sink) {
        Oid key_index = RelationGetPrimaryKeyIndex(rel);
        if (!OidIsValid(key_index))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel))));
        Relation index = index_open(key_index, AccessShareLock);
        // the key's integer type against bigint bounds, as the btree's cross-type operators do
        RegProcedure at_least, at_most;
        switch (index->rd_opcintype[0]) {
            case INT8OID: at_least = F_INT8GE; at_most = F_INT8LE; break;
            case INT4OID: at_least = F_INT48GE; at_most = F_INT48LE; break;
            case INT2OID: at_least = F_INT28GE; at_most = F_INT28LE; break;
            default:
                ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                                errmsg("the primary key of table \"%s\" is not one integer column", RelationGetRelationName(rel)),
                                errhint("Compare the environments again.")));
        }
        IndexScanDesc scan = index_beginscan(rel, index, GetActiveSnapshot(), 2, 0);
        TupleTableSlot *slot = table_slot_create(rel, nullptr);
        ScanKeyData keys[2];
        for (const KeyRange &range : ranges) {
            ScanKeyEntryInitialize(&keys[0], 0, 1, BTGreaterEqualStrategyNumber, INT8OID, InvalidOid, at_least,
                                   Int64GetDatum(range.low));
            ScanKeyEntryInitialize(&keys[1], 0, 1, BTLessEqualStrategyNumber, INT8OID, InvalidOid, at_most,
                                   Int64GetDatum(range.high));
            index_rescan(scan, keys, 2, nullptr, 0);
            while (index_getnext_slot(scan, ForwardScanDirection, slot))
                sink.take(slot);
        }
        ExecDropSingleTupleTableSlot(slot);
        index_endscan(scan);
        index_close(index, AccessShareLock);
    });
}

}  // namespace envsync::pg
