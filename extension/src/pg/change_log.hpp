// envsync.row_log, written by the change trigger straight to the heap (no SPI, no executor):
// one entry per written row. Each function runs its PostgreSQL calls inside pg_call().
#pragma once

#include <vector>

#include "pg/rows.hpp"

namespace envsync::pg {

// Whether writes of this transaction are envsync's own apply (envsync.applying, set by the
// apply functions only) rather than a user's edit.
extern bool applying;

// The id envsync.tracked_tables gives the table (a partition: its nearest tracked ancestor), 0
// if it is not tracked. Read without privilege
// checks: the trigger runs as whoever writes the table.
int32 tracked_table_id(Oid relid);

// Logs the row event the trigger fired for (an insert, update or delete of one row); a changed
// key is logged as a deletion of the old record and an insertion of the new one.
void log_row_event(TriggerData *trigger, const std::vector<ColumnReader> &columns,
                   const std::vector<AttrNumber> &key, int32 table_id);
// Logs a deletion of every row of the table, before TRUNCATE (nothing for a partitioned table:
// TRUNCATE fires each partition's own trigger).
void log_truncate(Relation rel, const std::vector<ColumnReader> &columns, const std::vector<AttrNumber> &key,
                  int32 table_id);

}  // namespace envsync::pg
