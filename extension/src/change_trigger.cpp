// The change-tracking trigger on every synced table, in every environment:
//   AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW  -> one row_log entry per written row
//   BEFORE TRUNCATE FOR EACH STATEMENT             -> a deletion entry per existing row
// The entries carry the table's id in envsync.tracked_tables, looked up by the table the trigger
// fires on (never taken from the trigger's arguments): a table envsync does not track logs nothing.
#include "pg/change_log.hpp"
#include "row_shape.hpp"

namespace envsync {
namespace {

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
        shape.tracked_id = pg::tracked_table_id(RelationGetRelid(rel));
    if (shape.tracked_id == 0)
        return PointerGetDatum(nullptr);
    if (row_level)
        pg::log_row_event(trigger, shape.columns, shape.key_columns, shape.tracked_id);
    else
        pg::log_truncate(rel, shape.columns, shape.key_columns, shape.tracked_id);
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
