// Library entry: module magic and the envsync.* settings.
#include "change_log.hpp"
#include "pg_boundary.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
void _PG_init(void) {
    // Superuser-only, so a user cannot pass their own edits off as envsync's apply; the apply
    // functions (SECURITY DEFINER) set it for their transaction only.
    DefineCustomBoolVariable("envsync.applying",
                             "Marks this transaction's writes as envsync's own apply.",
                             "Set by envsync's apply functions; changes are then not local edits.",
                             &envsync::applying, false, PGC_SUSET,
                             GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("envsync");
}
}
