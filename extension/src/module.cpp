// The library's entry: its magic block and the envsync.* settings (PostgreSQL's own C calls, at
// load time, with no C++ object involved).
#include "pg/change_log.hpp"
#include "settings.hpp"

namespace {
char *keep_before_images = nullptr;   // read in SQL: envsync.keep_before_images()
}

int envsync::settings::batch_kilobytes = 64 * 1024;

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
void _PG_init(void) {
    // Superuser-only, so a user cannot pass their own edits off as envsync's apply; the apply
    // functions (SECURITY DEFINER) set it for their transaction only.
    DefineCustomBoolVariable("envsync.applying",
                             "Marks this transaction's writes as envsync's own apply.",
                             "Set by envsync's apply functions; changes are then not local edits.",
                             &envsync::pg::applying, false, PGC_SUSET,
                             GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("envsync.keep_before_images",
                               "How long sync_revert() can undo a synchronization.",
                               "Before-images older than this (an interval) are purged.",
                               &keep_before_images, "30 days", PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("envsync.batch_bytes",
                            "About how many bytes of rows one read of a comparison asks for.",
                            "The records a comparison reads are asked for in parts of about this size, on both servers.",
                            &envsync::settings::batch_kilobytes, 64 * 1024, 64, MAX_KILOBYTES, PGC_USERSET,
                            GUC_UNIT_KB, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("envsync");
}
}
