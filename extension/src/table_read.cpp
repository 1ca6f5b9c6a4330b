// Reading a synced table where it lives, as its owner:
//   envsync.table_hashes(table_id integer) -> (key text, hash bigint)
//       every synced row's key and content hash (the full comparison)
//   envsync.table_rows(table_id integer, keys text[]) -> (key text[], hash bigint, row jsonb)
//       the rows with these keys (each the text of its text[] form, '{42}'), all rows if NULL
//
// Planning a query over a table evaluates the constant parts of its index expressions, and
// reading it may run its row security policies: the shop's code. So the query runs as the
// table's owner, the way PostgreSQL's maintenance commands act for an owner: the user id is
// switched under SECURITY_RESTRICTED_OPERATION, setting changes are undone, and row_security is
// off (a policy that would apply to the owner is an error, never evaluated). What is read and
// who may read it is decided by envsync.readable_table(), which also builds the query; rows
// outside a table's row filter are never read.
#include "pg_boundary.hpp"

namespace envsync {
namespace {

// Runs the query envsync.readable_table() gives for the table, as the table's owner, into the
// function's result (a tuplestore, which spills to disk past work_mem). Inside pg_call().
void read_table(FunctionCallInfo fcinfo, const char *what, Datum keys, bool keys_null) {
    InitMaterializedSRF(fcinfo, 0);
    auto *result = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "envsync: SPI_connect failed");

    Oid types[2] = {INT4OID, TEXTOID};
    Datum args[2] = {PG_GETARG_DATUM(0), CStringGetTextDatum(what)};
    if (SPI_execute_with_args("SELECT owner, query FROM envsync.readable_table($1, $2)", 2, types, args,
                              nullptr, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "envsync: no reading of the table");
    bool isnull;
    Oid owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    char *query = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    int guc_level = NewGUCNestLevel();
    set_config_option("row_security", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

    Oid key_type[1] = {TEXTARRAYOID};
    Datum key_arg[1] = {keys};
    char key_null[1] = {keys_null ? 'n' : ' '};
    Portal cursor = SPI_cursor_open_with_args(nullptr, query, 1, key_type, key_arg, key_null, true, 0);
    for (;;) {
        SPI_cursor_fetch(cursor, true, 10000);
        if (SPI_processed == 0)
            break;
        for (uint64 i = 0; i < SPI_processed; i++)
            tuplestore_puttuple(result->setResult, SPI_tuptable->vals[i]);
        SPI_freetuptable(SPI_tuptable);
    }
    SPI_cursor_close(cursor);

    AtEOXact_GUC(false, guc_level);
    SetUserIdAndSecContext(saved_user, saved_context);
    SPI_finish();
}

Datum table_hashes(FunctionCallInfo fcinfo) {
    pg_call([&] { read_table(fcinfo, "hashes", Datum(0), true); });
    return Datum(0);
}

Datum table_rows(FunctionCallInfo fcinfo) {
    pg_call([&] { read_table(fcinfo, "rows", PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1), PG_ARGISNULL(1)); });
    return Datum(0);
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_table_hashes);
Datum envsync_table_hashes(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::table_hashes(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_table_rows);
Datum envsync_table_rows(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::table_rows(fcinfo); });
}
}
