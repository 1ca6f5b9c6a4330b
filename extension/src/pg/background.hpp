// A transaction of its own for recording a failed run, in a background worker: a synchronization
// started by a plain SELECT sync_apply(...) fails by raising its error, which rolls back the
// caller's whole transaction, and its failure must still be recorded and mailed. Nothing simpler
// works inside a function: a procedure could commit, but sync_apply() returns rows and is called
// within its caller's transaction; a loopback connection would need credentials.
//
// The caller waits for the worker on a lock the worker holds (not on a latch), so that a worker
// waiting for a lock the caller holds is a deadlock PostgreSQL detects and resolves.
#pragma once

#include <string>

#include "pg/boundary.hpp"

namespace envsync::pg {

// Whether the comparison's record was made in this very transaction: then no other transaction
// can see it, and a failure of its synchronization cannot be recorded apart.
bool comparison_made_here(int64 comparison_id);

// Runs envsync.record_failure() with the payload ({"run", "failure"}) in a background worker and
// waits for it; empty once recorded, else why it was not.
std::string record_apart(const std::string &payload);

}  // namespace envsync::pg
