// The change-tracking trigger on every synced table, in every environment:
//   AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW  -> one row_log entry per written row
//   BEFORE TRUNCATE FOR EACH STATEMENT             -> a deletion entry per existing row
// The entries carry the table's id in envsync.tracked_tables, looked up by the table the trigger
// fires on (never taken from the trigger's arguments): a table envsync does not track logs nothing.
#include "change_log.hpp"
#include "pg_boundary.hpp"
#include "row_shape.hpp"

namespace envsync {
namespace {

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

// Everything below runs inside one pg_call(): plain PostgreSQL code, no C++ resources.
void log_row_event(TriggerData *trigger, const RowShape &shape, int32 table_id) {
    TupleDesc desc = RelationGetDescr(trigger->tg_relation);
    Relation log = open_change_log();
    TriggerEvent event = trigger->tg_event;
    if (TRIGGER_FIRED_BY_INSERT(event)) {
        DeformedRow row = deform(trigger->tg_trigtuple, desc);
        append_change(log, table_id, row_key(shape, row.values, row.nulls), ChangeKind::inserted,
                      row_hash(shape, row.values, row.nulls));
    } else if (TRIGGER_FIRED_BY_DELETE(event)) {
        DeformedRow row = deform(trigger->tg_trigtuple, desc);
        append_change(log, table_id, row_key(shape, row.values, row.nulls), ChangeKind::deleted, 0);
    } else {
        DeformedRow before = deform(trigger->tg_trigtuple, desc);
        DeformedRow after = deform(trigger->tg_newtuple, desc);
        Datum new_key = row_key(shape, after.values, after.nulls);
        uint64_t hash = row_hash(shape, after.values, after.nulls);
        if (same_key(shape, before.values, before.nulls, after.values, after.nulls)) {
            append_change(log, table_id, new_key, ChangeKind::updated, hash);
        } else {  // a changed internal ID is another record: one gone, one new
            append_change(log, table_id, row_key(shape, before.values, before.nulls),
                          ChangeKind::deleted, 0);
            append_change(log, table_id, new_key, ChangeKind::inserted, hash);
        }
    }
    table_close(log, NoLock);
}

void log_truncate(TriggerData *trigger, const RowShape &shape, int32 table_id) {
    Relation rel = trigger->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    Relation log = open_change_log();
    Datum *values = static_cast<Datum *>(palloc(desc->natts * sizeof(Datum)));
    bool *nulls = static_cast<bool *>(palloc(desc->natts * sizeof(bool)));
    TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, nullptr);
    MemoryContext per_row = AllocSetContextCreate(CurrentMemoryContext, "envsync truncate",
                                                  ALLOCSET_DEFAULT_SIZES);
    MemoryContext outer = MemoryContextSwitchTo(per_row);
    for (HeapTuple tuple; (tuple = heap_getnext(scan, ForwardScanDirection)) != nullptr;) {
        heap_deform_tuple(tuple, desc, values, nulls);
        append_change(log, table_id, row_key(shape, values, nulls), ChangeKind::deleted, 0);
        MemoryContextReset(per_row);
    }
    MemoryContextSwitchTo(outer);
    MemoryContextDelete(per_row);
    table_endscan(scan);
    table_close(log, NoLock);
}

Datum track_change(FunctionCallInfo fcinfo) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        throw UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                        "envsync.track_change() was not called by a trigger");
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    TriggerEvent event = trigger->tg_event;
    bool row_level = TRIGGER_FIRED_FOR_ROW(event);
    if ((row_level && !TRIGGER_FIRED_AFTER(event)) || (!row_level && !TRIGGER_FIRED_BY_TRUNCATE(event)))
        throw UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                        "envsync.track_change() must be installed by envsync",
                        "It runs AFTER each row or BEFORE TRUNCATE.",
                        "Track tables with sync_add_module().");
    Relation rel = trigger->tg_relation;
    const RowShape &shape = row_shape(RelationGetDescr(rel), true);
    if (shape.tracked_id < 0)
        shape.tracked_id = pg_call([&] { return tracked_table_id(RelationGetRelid(rel)); });
    int32 table_id = shape.tracked_id;
    if (table_id == 0)
        return PointerGetDatum(nullptr);
    pg_call([&] {
        if (row_level)
            log_row_event(trigger, shape, table_id);
        else
            log_truncate(trigger, shape, table_id);
    });
    return PointerGetDatum(nullptr);
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_track_change);
Datum envsync_track_change(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::track_change(fcinfo); });
}
}
