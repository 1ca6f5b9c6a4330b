#include "pg/scan.hpp"

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

void scan_one(Oid relid, const RowFilter &filter, Datum pattern, MemoryContext row_memory,
              const std::function<void(TupleDesc)> &table, const std::function<void(const Datum *, const bool *)> &row) {
    Relation rel = table_open(relid, NoLock);  // locked by scan_rows
    TupleDesc desc = RelationGetDescr(rel);
    AttrNumber filtered = filter_attnum(rel, filter);
    Oid collation = filtered ? TupleDescAttr(desc, filtered - 1)->attcollation : InvalidOid;
    table(desc);
    TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, nullptr);
    TupleTableSlot *slot = table_slot_create(rel, nullptr);
    while (table_scan_getnextslot(scan, ForwardScanDirection, slot)) {
        CHECK_FOR_INTERRUPTS();
        slot_getallattrs(slot);
        MemoryContext caller = MemoryContextSwitchTo(row_memory);
        if (!filtered || (!slot->tts_isnull[filtered - 1] &&
                          DatumGetBool(DirectFunctionCall2Coll(textlike, collation, slot->tts_values[filtered - 1], pattern))))
            row(slot->tts_values, slot->tts_isnull);
        MemoryContextSwitchTo(caller);
        MemoryContextReset(row_memory);
    }
    ExecDropSingleTupleTableSlot(slot);
    table_endscan(scan);
    table_close(rel, NoLock);
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

void scan_rows(Oid relid, const RowFilter &filter, const std::function<void(TupleDesc)> &table,
               const std::function<void(const Datum *, const bool *)> &row) {
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
            if (RELKIND_HAS_STORAGE(get_rel_relkind(part)))
                scan_one(part, filter, pattern, row_memory, table, row);
        }
        MemoryContextDelete(row_memory);
    });
}

}  // namespace envsync::pg
