#include "pg/change_log.hpp"

namespace envsync::pg {

bool applying = false;

namespace {

enum class ChangeKind : char { inserted = 'I', updated = 'U', deleted = 'D' };
enum LogColumn { table_id_col, key_col, kind_col, applied_col, xid_col, at_col, n_cols };
struct LogColumnSpec {
    const char *name;
    Oid type;
};
constexpr LogColumnSpec log_columns[n_cols] = {{"table_id", INT4OID}, {"key", TEXTARRAYOID}, {"kind", CHAROID},
                                               {"applied", BOOLOID}, {"xid", XID8OID}, {"at", TIMESTAMPTZOID}};

Oid log_relid = InvalidOid;

// What a write of an entry needs that outlives the statement, found once and kept until the log
// or one of its indexes changes: where its columns are (by name, as a column dropped by an
// upgrade keeps its place and stays NULL) and its indexes with their IndexInfo. Building the
// IndexInfo for every written row took about a tenth of the trigger's time.
struct LogLayout {
    bool valid = false;
    MemoryContext context = nullptr;  // the IndexInfos and the arrays below
    int position[n_cols];
    int natts;
    Datum *values;  // one entry's values and nulls, by the log's attribute numbers
    bool *nulls;
    int n_indexes;
    Oid *index_oids;
    IndexInfo **index_info;
};
LogLayout layout;

// Invalidation only marks the layout stale: it may arrive while an entry is being written
// (opening an index accepts invalidations), so it is rebuilt at the next opening of the log.
void forget_log(Datum, Oid relid) {
    if (relid == InvalidOid || relid == log_relid) {
        log_relid = InvalidOid;
        layout.valid = false;
        return;
    }
    for (int i = 0; layout.valid && i < layout.n_indexes; i++)
        if (layout.index_oids[i] == relid)
            layout.valid = false;
}

bool find_columns(TupleDesc desc, int *position) {
    int live = 0;
    for (int c = 0; c < n_cols; c++)
        position[c] = -1;
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(desc, i);
        if (attr->attisdropped)
            continue;
        live++;
        for (int c = 0; c < n_cols; c++)
            if (strcmp(NameStr(attr->attname), log_columns[c].name) == 0 && attr->atttypid == log_columns[c].type)
                position[c] = i;
    }
    for (int c = 0; c < n_cols; c++)
        if (position[c] < 0)
            return false;
    return live == n_cols;
}

// Entries go straight to the heap and its indexes, bypassing the executor: the table must stay
// as the install script made it (its columns, no trigger, indexes of plain columns only: no
// expression, no predicate, no exclusion constraint) to remain consistent.
[[noreturn]] void log_altered() {
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("envsync change log table \"envsync.row_log\" was altered"),
                    errdetail("The table must have its original columns, no trigger and only indexes of plain columns.")));
    pg_unreachable();
}

void build_layout(Relation rel) {
    if (!layout.context)
        layout.context = AllocSetContextCreate(CacheMemoryContext, "envsync change log", ALLOCSET_SMALL_SIZES);
    MemoryContextReset(layout.context);
    layout.valid = false;
    TupleDesc desc = RelationGetDescr(rel);
    if (!find_columns(desc, layout.position))
        log_altered();
    List *indexes = RelationGetIndexList(rel);
    MemoryContext outer = MemoryContextSwitchTo(layout.context);
    layout.natts = desc->natts;
    layout.values = static_cast<Datum *>(palloc0(desc->natts * sizeof(Datum)));
    layout.nulls = static_cast<bool *>(palloc(desc->natts * sizeof(bool)));
    layout.n_indexes = list_length(indexes);
    layout.index_oids = static_cast<Oid *>(palloc0(layout.n_indexes * sizeof(Oid)));
    layout.index_info = static_cast<IndexInfo **>(palloc0(layout.n_indexes * sizeof(IndexInfo *)));
    MemoryContextSwitchTo(outer);
    // Valid from here: an invalidation taken in while the indexes are opened marks it stale again.
    layout.valid = true;
    int i = 0;
    ListCell *cell;
    foreach (cell, indexes) {
        Relation index = index_open(lfirst_oid(cell), RowExclusiveLock);
        outer = MemoryContextSwitchTo(layout.context);
        IndexInfo *info = BuildIndexInfo(index);
        MemoryContextSwitchTo(outer);
        index_close(index, NoLock);
        if (info->ii_Expressions != NIL || info->ii_Predicate != NIL || info->ii_ExclusionOps != nullptr) {
            layout.valid = false;
            log_altered();
        }
        layout.index_oids[i] = lfirst_oid(cell);
        layout.index_info[i++] = info;
    }
    list_free(indexes);
}

// The log table, opened for appending (closed with table_close(.., NoLock)).
Relation open_change_log() {
    static bool callback_registered = false;
    if (!callback_registered) {
        CacheRegisterRelcacheCallback(forget_log, Datum(0));
        callback_registered = true;
    }
    if (!OidIsValid(log_relid))
        log_relid = get_relname_relid("row_log", get_namespace_oid("envsync", false));
    if (!OidIsValid(log_relid))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("envsync change log table is missing"),
                        errhint("Reinstall the extension with DROP EXTENSION envsync and CREATE EXTENSION envsync.")));
    Relation rel = table_open(log_relid, RowExclusiveLock);
    if (!layout.valid)  // after the lock: changes of the table made before it are seen
        build_layout(rel);
    if (rel->trigdesc)
        log_altered();
    return rel;
}

void append_change(Relation log, int32 table_id, Datum key, ChangeKind kind) {
    Datum *values = layout.values;
    bool *nulls = layout.nulls;
    memset(nulls, true, layout.natts * sizeof(bool));
    auto set = [&](LogColumn c, Datum value) {
        values[layout.position[c]] = value;
        nulls[layout.position[c]] = false;
    };
    set(table_id_col, Int32GetDatum(table_id));
    set(key_col, key);
    set(kind_col, CharGetDatum(static_cast<char>(kind)));
    set(applied_col, BoolGetDatum(applying));
    set(xid_col, FullTransactionIdGetDatum(GetTopFullTransactionId()));
    set(at_col, TimestampTzGetDatum(GetCurrentStatementStartTimestamp()));
    HeapTuple tuple = heap_form_tuple(RelationGetDescr(log), values, nulls);
    simple_heap_insert(log, tuple);
    // Index entries from the values themselves: the indexes are of plain columns.
    Datum index_values[INDEX_MAX_KEYS];
    bool index_nulls[INDEX_MAX_KEYS];
    for (int i = 0; i < layout.n_indexes; i++) {
        IndexInfo *info = layout.index_info[i];
        if (!info->ii_ReadyForInserts)
            continue;
        for (int k = 0; k < info->ii_NumIndexAttrs; k++) {
            AttrNumber column = info->ii_IndexAttrNumbers[k];
            index_values[k] = values[column - 1];
            index_nulls[k] = nulls[column - 1];
        }
        Relation index = index_open(layout.index_oids[i], RowExclusiveLock);
        index_insert(index, index_values, index_nulls, &tuple->t_self, log,
                     info->ii_Unique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO, false, info);
        index_close(index, NoLock);
    }
    heap_freetuple(tuple);
}

struct DeformedRow {
    Datum *values;
    bool *nulls;
};

DeformedRow deform(HeapTuple tuple, TupleDesc desc) {
    DeformedRow row{static_cast<Datum *>(palloc(desc->natts * sizeof(Datum))),
                    static_cast<bool *>(palloc(desc->natts * sizeof(bool)))};
    heap_deform_tuple(tuple, desc, row.values, row.nulls);
    return row;
}

}  // namespace

int32 tracked_table_id(Oid relid) {
    return pg_call([&] {
        // A partition's rows are its partitioned table's: the nearest tracked ancestor's id.
        List *candidates = list_make1_oid(relid);
        if (get_rel_relispartition(relid))
            candidates = list_concat(candidates, get_partition_ancestors(relid));
        Oid schema = get_namespace_oid("envsync", true);
        Oid tables = OidIsValid(schema) ? get_relname_relid("tracked_tables", schema) : InvalidOid;
        if (!OidIsValid(tables))
            return int32(0);
        Relation rel = table_open(tables, AccessShareLock);
        TupleDesc desc = RelationGetDescr(rel);
        AttrNumber id_column = InvalidAttrNumber, relid_column = InvalidAttrNumber;
        for (int i = 0; i < desc->natts; i++) {
            const char *name = NameStr(TupleDescAttr(desc, i)->attname);
            if (strcmp(name, "table_id") == 0)
                id_column = i + 1;
            else if (strcmp(name, "relid") == 0)
                relid_column = i + 1;
        }
        if (id_column == InvalidAttrNumber || relid_column == InvalidAttrNumber)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("envsync table \"envsync.tracked_tables\" was altered")));
        int32 id = 0;
        ListCell *cell;
        foreach (cell, candidates) {
            ScanKeyData key;
            ScanKeyInit(&key, relid_column, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(lfirst_oid(cell)));
            TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 1, &key);
            if (HeapTuple tuple = heap_getnext(scan, ForwardScanDirection)) {
                bool isnull;
                Datum value = heap_getattr(tuple, id_column, desc, &isnull);
                id = isnull ? 0 : DatumGetInt32(value);
            }
            table_endscan(scan);
            if (id != 0)
                break;
        }
        table_close(rel, AccessShareLock);
        list_free(candidates);
        return id;
    });
}

void log_row_event(TriggerData *trigger, const std::vector<ColumnReader> &columns,
                   const std::vector<AttrNumber> &key, int32 table_id) {
    pg_call([&] {
        TupleDesc desc = RelationGetDescr(trigger->tg_relation);
        Relation log = open_change_log();
        TriggerEvent event = trigger->tg_event;
        if (TRIGGER_FIRED_BY_INSERT(event)) {
            DeformedRow row = deform(trigger->tg_trigtuple, desc);
            append_change(log, table_id, unguarded::row_key(columns, key, row.values, row.nulls), ChangeKind::inserted);
        } else if (TRIGGER_FIRED_BY_DELETE(event)) {
            DeformedRow row = deform(trigger->tg_trigtuple, desc);
            append_change(log, table_id, unguarded::row_key(columns, key, row.values, row.nulls), ChangeKind::deleted);
        } else {
            DeformedRow before = deform(trigger->tg_trigtuple, desc);
            DeformedRow after = deform(trigger->tg_newtuple, desc);
            Datum new_key = unguarded::row_key(columns, key, after.values, after.nulls);
            if (unguarded::same_key(columns, key, before.values, before.nulls, after.values, after.nulls)) {
                append_change(log, table_id, new_key, ChangeKind::updated);
            } else {  // a changed internal ID is another record: one gone, one new
                append_change(log, table_id, unguarded::row_key(columns, key, before.values, before.nulls),
                              ChangeKind::deleted);
                append_change(log, table_id, new_key, ChangeKind::inserted);
            }
        }
        table_close(log, NoLock);
    });
}

void log_truncate(Relation rel, const std::vector<ColumnReader> &columns, const std::vector<AttrNumber> &key,
                  int32 table_id) {
    pg_call([&] {
        // A partitioned table has no rows of its own: each partition's trigger logs its rows.
        if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
            return;
        TupleDesc desc = RelationGetDescr(rel);
        Relation log = open_change_log();
        Datum *values = static_cast<Datum *>(palloc(desc->natts * sizeof(Datum)));
        bool *nulls = static_cast<bool *>(palloc(desc->natts * sizeof(bool)));
        TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, nullptr);
        MemoryContext per_row = AllocSetContextCreate(CurrentMemoryContext, "envsync truncate", ALLOCSET_DEFAULT_SIZES);
        MemoryContext outer = MemoryContextSwitchTo(per_row);
        for (HeapTuple tuple; (tuple = heap_getnext(scan, ForwardScanDirection)) != nullptr;) {
            heap_deform_tuple(tuple, desc, values, nulls);
            append_change(log, table_id, unguarded::row_key(columns, key, values, nulls), ChangeKind::deleted);
            MemoryContextReset(per_row);
        }
        MemoryContextSwitchTo(outer);
        MemoryContextDelete(per_row);
        table_endscan(scan);
        table_close(log, NoLock);
    });
}

}  // namespace envsync::pg
