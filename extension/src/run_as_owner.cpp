// envsync.run_as_owner(owner oid, query text, run bigint) -> jsonb
//
// Runs one of envsync's own apply statements as the owner of the tables it writes (pg/owner.hpp):
// the table's triggers, defaults, CHECK and domain checks, generated columns and index
// expressions then run with their owner's rights, never with envsync's.
#include <string>

#include "pg/owner.hpp"
#include "pg/results.hpp"
#include "pg/spi.hpp"

namespace envsync {
namespace {

Datum run_as_owner(FunctionCallInfo fcinfo) {
    Oid owner = PG_GETARG_OID(0);
    std::string query = pg::text_argument(fcinfo, 1);
    Datum run = PG_GETARG_DATUM(2);
    bool isnull = true;
    Datum result = 0;
    pg::connect();
    pg::as_owner(owner, false, [&] {
        if (pg::execute(query, pg::Params().add(INT8OID, run), false) == 1)
            result = pg::transfer(0, 1, &isnull);  // out of SPI's memory
    });
    pg::finish();
    if (isnull)
        PG_RETURN_NULL();
    return result;
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_run_as_owner);
Datum envsync_run_as_owner(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::run_as_owner(fcinfo); });
}
}
