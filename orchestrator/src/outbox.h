#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "pg.h"
#include "render.h"
#include "retry.h"

// The SQL side of delivery: claim a due row, record the outcome.
namespace envsync::outbox {

struct Row {
    std::int64_t id = 0;
    std::int64_t created_epoch = 0;
    std::string recipient;
    int attempts = 0;
    Notification content;
};

// Locks the next due pending row (FOR UPDATE SKIP LOCKED, so concurrent orchestrators take
// different rows) and reads it with its module rows. Must run inside a transaction, which
// keeps the lock until the outcome is recorded. Only rows due at `cutoff` (a timestamptz
// text, 'infinity' for no limit) are taken.
std::optional<Row> claim_next(pg::Connection& db, const std::string& cutoff);

void record(pg::Connection& db, std::int64_t id, const Disposition& outcome);

// Time until the earliest pending row is due; nullopt when nothing is pending.
std::optional<std::chrono::milliseconds> until_next_due(pg::Connection& db);

}  // namespace envsync::outbox
