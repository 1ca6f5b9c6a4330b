// envsync.row_log: one entry per tracked write, appended by the change trigger.
#pragma once

#include "pg_headers.hpp"
#include "row_shape.hpp"

namespace envsync {

enum class ChangeKind : char { inserted = 'I', updated = 'U', deleted = 'D' };

// Whether writes of this transaction are envsync's own apply (envsync.applying, set by the
// apply functions only) rather than a user's edit.
extern bool applying;

// Appends one entry; hash is ignored for deletions. Calls PostgreSQL: run inside pg_call().
void append_change(Relation log, int32 table_id, Datum key, ChangeKind kind, uint64_t hash);

// The log table, opened for appending (closed by the caller with table_close(.., NoLock)).
Relation open_change_log();

// The id envsync.tracked_tables gives the table, 0 if it is not tracked. Read without privilege
// checks: the trigger runs as whoever writes the table. Calls PostgreSQL: inside pg_call().
int32 tracked_table_id(Oid relid);

}  // namespace envsync
