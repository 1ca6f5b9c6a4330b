// Acting for a table's owner, the way PostgreSQL's maintenance commands (VACUUM, ANALYZE,
// REFRESH MATERIALIZED VIEW) do: the user id is switched to the owner under
// SECURITY_RESTRICTED_OPERATION, and every setting changed meanwhile is undone. The shop's code
// reached while envsync reads or writes a table (triggers, defaults, checks, domain checks,
// generated columns, index expressions, row security policies) then runs with the owner's
// rights, never with envsync's.
#pragma once

#include <utility>

#include "pg/boundary.hpp"

namespace envsync::pg {

struct OwnerScope {
    Oid user;
    int security_context;
    int settings_level;
};

// With reading, row_security is off: a policy that would apply to the owner is an ERROR, never
// evaluated. JIT is off: envsync's reads and writes are plain scans and joins by key, whose
// compilation would cost more time than it saves and tens of MB of memory, once a table is
// large enough (or the estimates of a staged run are).
OwnerScope enter_owner(Oid owner, bool reading);
void leave_owner(const OwnerScope &scope);

// Runs f (C++ calling PostgreSQL through the pg/ wrappers) as the owner. An exception out of f
// ends in an ERROR, whose (sub)transaction abort restores the user id, the security context and
// the settings.
template <typename F>
void as_owner(Oid owner, bool reading, F &&f) {
    OwnerScope scope = enter_owner(owner, reading);
    std::forward<F>(f)();
    leave_owner(scope);
}

}  // namespace envsync::pg
