// Recording a failed synchronization apart from the caller's transaction, which its error ends
// (pg/background.hpp says how and why):
//   envsync.record_apart(payload text) -> text           NULL once recorded, else why it was not
//   envsync.comparison_made_here(comparison_id bigint)  whether this transaction made it
#include "pg/background.hpp"
#include "pg/results.hpp"
#include "pg/spi.hpp"

namespace envsync {
namespace {

Datum record_apart(FunctionCallInfo fcinfo) {
    std::string reason = pg::record_apart(pg::text_argument(fcinfo, 0));
    if (reason.empty())
        PG_RETURN_NULL();
    return pg::text_datum(reason.c_str());
}

Datum comparison_made_here(FunctionCallInfo fcinfo) {
    pg::connect();
    bool here = pg::comparison_made_here(PG_GETARG_INT64(0));
    pg::finish();
    return BoolGetDatum(here);
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_record_apart);
Datum envsync_record_apart(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::record_apart(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_comparison_made_here);
Datum envsync_comparison_made_here(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::comparison_made_here(fcinfo); });
}
}
