// envsync.run_as_owner(owner oid, query text, run bigint) -> jsonb
//
// Runs one of envsync's own apply statements as the owner of the tables it writes, the way
// PostgreSQL's maintenance commands (VACUUM, ANALYZE, REFRESH MATERIALIZED VIEW) act for a
// table's owner: the user id is switched under SECURITY_RESTRICTED_OPERATION and every setting
// the statement's user code changes is undone. Triggers, defaults, CHECK and domain checks,
// generated columns and index expressions of the written tables then run with their owner's
// rights, never with envsync's. An error on the way is left to the (sub)transaction abort,
// which restores the user id, the security context and the settings.
#include "pg_boundary.hpp"

namespace envsync {
namespace {

Datum run_as_owner(FunctionCallInfo fcinfo) {
    return pg_call([&]() -> Datum {
        Oid owner = PG_GETARG_OID(0);
        char *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
        Datum run = PG_GETARG_DATUM(2);
        if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                            errmsg("role with OID %u does not exist", owner)));

        Oid saved_user;
        int saved_context;
        GetUserIdAndSecContext(&saved_user, &saved_context);
        SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE |
                                          SECURITY_RESTRICTED_OPERATION);
        int guc_level = NewGUCNestLevel();

        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "envsync: SPI_connect failed");
        Oid types[1] = {INT8OID};
        Datum args[1] = {run};
        if (SPI_execute_with_args(query, 1, types, args, nullptr, false, 0) != SPI_OK_SELECT)
            elog(ERROR, "envsync: an apply statement did not return its result");
        bool isnull = true;
        Datum result = 0;
        if (SPI_processed == 1) {
            result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
            if (!isnull)
                result = SPI_datumTransfer(result, false, -1);  // out of SPI's memory
        }
        SPI_finish();

        AtEOXact_GUC(false, guc_level);
        SetUserIdAndSecContext(saved_user, saved_context);
        if (isnull)
            PG_RETURN_NULL();
        return result;
    });
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_run_as_owner);
Datum envsync_run_as_owner(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::run_as_owner(fcinfo); });
}
}
