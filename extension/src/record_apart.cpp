// envsync.record_apart(payload jsonb): runs envsync.record_failure() in a transaction of its
// own, in a background worker, and waits for it. A synchronization started by a plain
// SELECT sync_apply(...) fails by raising its error, which rolls back the caller's whole
// transaction; its failure must still be recorded (and mailed), so it is written apart.
#include <cstring>

#include "pg_boundary.hpp"

namespace envsync {
namespace {

constexpr size_t error_size = 1024;

// Shared with the worker, in a dynamic shared memory segment.
struct Request {
    Oid database;
    Oid user;
    bool recorded;             // set by the worker once committed
    char error[error_size];    // else, why not
    size_t payload_size;
    char payload[FLEXIBLE_ARRAY_MEMBER];
};

// The worker's one statement; the payload is its only parameter.
constexpr const char *record_sql =
    "SELECT envsync.record_failure(jsonb_populate_record(NULL::envsync.sync_runs, p -> 'run'), p -> 'failure') "
    "FROM (SELECT $1::jsonb AS p) AS request";

// Returns NULL once recorded, else the reason it was not (palloc'd).
char *record(const char *payload) {
    size_t payload_size = strlen(payload) + 1;
    dsm_segment *segment = dsm_create(offsetof(Request, payload) + payload_size, 0);
    auto *request = static_cast<Request *>(dsm_segment_address(segment));
    request->database = MyDatabaseId;
    request->user = GetUserId();
    request->recorded = false;
    request->error[0] = '\0';
    request->payload_size = payload_size;
    memcpy(request->payload, payload, payload_size);

    BackgroundWorker worker;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART;
    strlcpy(worker.bgw_library_name, "envsync", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "envsync_record_apart_main", BGW_MAXLEN);
    strlcpy(worker.bgw_name, "envsync failure recorder", BGW_MAXLEN);
    strlcpy(worker.bgw_type, "envsync failure recorder", BGW_MAXLEN);
    worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(segment));
    worker.bgw_notify_pid = MyProcPid;

    BackgroundWorkerHandle *handle;
    char *reason = nullptr;
    if (!RegisterDynamicBackgroundWorker(&worker, &handle)) {
        reason = pstrdup("no background worker slot is free (max_worker_processes)");
    } else if (WaitForBackgroundWorkerShutdown(handle) != BGWH_STOPPED) {
        reason = pstrdup("the server is shutting down");
    } else {
        pg_read_barrier();
        if (!request->recorded)
            reason = pstrdup(request->error[0] ? request->error : "the recorder stopped; see the server log");
    }
    dsm_detach(segment);
    return reason;
}

}  // namespace
}  // namespace envsync

extern "C" {
PGDLLEXPORT Datum envsync_record_apart(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(envsync_record_apart);
Datum envsync_record_apart(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&]() -> Datum {
        text *reason = envsync::pg_call([&]() -> text * {
            char *why = envsync::record(text_to_cstring(PG_GETARG_TEXT_PP(0)));
            return why ? cstring_to_text(why) : nullptr;
        });
        if (reason == nullptr)
            PG_RETURN_NULL();
        PG_RETURN_TEXT_P(reason);
    });
}

// The worker's main: plain PostgreSQL code, no C++ object on its stack. An error is copied
// into the request for the waiting backend, then ends the worker as usual.
PGDLLEXPORT void envsync_record_apart_main(Datum arg);
void envsync_record_apart_main(Datum arg) {
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    dsm_segment *segment = dsm_attach(DatumGetUInt32(arg));
    if (segment == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("envsync failure recorder: the request is gone")));
    auto *request = static_cast<envsync::Request *>(dsm_segment_address(segment));
    BackgroundWorkerInitializeConnectionByOid(request->database, request->user, 0);

    PG_TRY();
    {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        SPI_connect();
        PushActiveSnapshot(GetTransactionSnapshot());
        pgstat_report_activity(STATE_RUNNING, envsync::record_sql);
        Oid type = TEXTOID;
        Datum payload = CStringGetTextDatum(request->payload);
        if (SPI_execute_with_args(envsync::record_sql, 1, &type, &payload, nullptr, false, 0) != SPI_OK_SELECT)
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("envsync failure recorder: unexpected result")));
        SPI_finish();
        PopActiveSnapshot();
        CommitTransactionCommand();
        pgstat_report_activity(STATE_IDLE, nullptr);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(TopMemoryContext);
        ErrorData *error = CopyErrorData();
        strlcpy(request->error, error->message ? error->message : "error", envsync::error_size);
        PG_RE_THROW();
    }
    PG_END_TRY();
    pg_write_barrier();
    request->recorded = true;
    dsm_detach(segment);
    proc_exit(0);
}
}
