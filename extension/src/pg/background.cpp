#include "pg/background.hpp"

#include "pg/spi.hpp"

namespace envsync::pg {
namespace {

constexpr size_t error_size = 1024;

// Shared with the worker, in a dynamic shared memory segment.
struct Request {
    Oid database;
    Oid user;
    int64 lock_key;            // the advisory lock the worker holds while it works
    bool locked;               // set by the worker once it holds the lock
    bool recorded;             // set by the worker once committed
    char error[error_size];    // else, why not
    size_t payload_size;
    char payload[FLEXIBLE_ARRAY_MEMBER];
};

// The worker's one statement; the payload is its only parameter.
constexpr const char *record_sql =
    "SELECT envsync.record_failure(jsonb_populate_record(NULL::envsync.sync_runs, p -> 'run'), p -> 'failure') "
    "FROM (SELECT $1::jsonb AS p) AS request";

// Starts the worker; false when no slot is free.
bool start_worker(dsm_segment *segment, BackgroundWorkerHandle **handle) {
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
    return RegisterDynamicBackgroundWorker(&worker, handle);
}

// Waits until the worker holds its lock (it takes it first thing, needing no lock of ours) or
// has stopped; true if it holds it.
bool wait_until_locked(volatile Request *request, BackgroundWorkerHandle *handle) {
    for (;;) {
        pg_read_barrier();
        if (request->locked)
            return true;
        pid_t pid;
        if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
            return false;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

// Returns NULL once recorded, else the reason it was not (palloc'd).
char *record(const char *payload) {
    size_t payload_size = strlen(payload) + 1;
    dsm_segment *segment = dsm_create(offsetof(Request, payload) + payload_size, 0);
    auto *request = static_cast<Request *>(dsm_segment_address(segment));
    request->database = MyDatabaseId;
    request->user = GetUserId();
    request->lock_key = (static_cast<int64>(hash_bytes(reinterpret_cast<const unsigned char *>("envsync record"), 14)) << 32)
                        | dsm_segment_handle(segment);
    request->locked = false;
    request->recorded = false;
    request->error[0] = '\0';
    request->payload_size = payload_size;
    memcpy(request->payload, payload, payload_size);

    BackgroundWorkerHandle *handle;
    char *reason = nullptr;
    if (!start_worker(segment, &handle)) {
        reason = pstrdup("no background worker slot is free (max_worker_processes)");
    } else {
        // The wait for the worker's end is a wait for its lock, which the deadlock detector sees.
        if (wait_until_locked(request, handle)) {
            DirectFunctionCall1(pg_advisory_lock_int8, Int64GetDatum(request->lock_key));
            DirectFunctionCall1(pg_advisory_unlock_int8, Int64GetDatum(request->lock_key));
        }
        if (WaitForBackgroundWorkerShutdown(handle) != BGWH_STOPPED)
            reason = pstrdup("the server is shutting down");
        pg_read_barrier();
        if (reason == nullptr && !request->recorded)
            reason = pstrdup(request->error[0] ? request->error : "the recorder stopped; see the server log");
    }
    dsm_detach(segment);
    return reason;
}

}  // namespace

bool comparison_made_here(int64 comparison_id) {
    execute("SELECT xmin FROM envsync.compare_runs WHERE id = $1", Params().add(INT8OID, Int64GetDatum(comparison_id)),
            true);
    bool isnull;
    Datum xmin = value(0, 1, &isnull);
    return !isnull && pg_call([&] { return TransactionIdIsCurrentTransactionId(DatumGetTransactionId(xmin)); });
}

std::string record_apart(const std::string &payload) {
    const char *reason = pg_call([&] { return static_cast<const char *>(record(payload.c_str())); });
    return reason ? std::string(reason) : std::string();
}

}  // namespace envsync::pg

extern "C" {
// The worker's main: plain PostgreSQL code, no C++ object on its stack. It holds its lock while
// it works, so that its wait for a lock of the waiting backend is a deadlock PostgreSQL detects.
// An error is copied into the request for the waiting backend, then ends the worker as usual.
PGDLLEXPORT void envsync_record_apart_main(Datum arg);
void envsync_record_apart_main(Datum arg) {
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    dsm_segment *segment = dsm_attach(DatumGetUInt32(arg));
    if (segment == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("envsync failure recorder: the request is gone")));
    auto *request = static_cast<envsync::pg::Request *>(dsm_segment_address(segment));
    BackgroundWorkerInitializeConnectionByOid(request->database, request->user, 0);

    PG_TRY();
    {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        DirectFunctionCall1(pg_advisory_lock_int8, Int64GetDatum(request->lock_key));  // session level
        pg_write_barrier();
        request->locked = true;
        SPI_connect();
        PushActiveSnapshot(GetTransactionSnapshot());
        pgstat_report_activity(STATE_RUNNING, envsync::pg::record_sql);
        Oid type = TEXTOID;
        Datum payload = CStringGetTextDatum(request->payload);
        if (SPI_execute_with_args(envsync::pg::record_sql, 1, &type, &payload, nullptr, false, 0) != SPI_OK_SELECT)
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
        strlcpy(request->error, error->message ? error->message : "error", envsync::pg::error_size);
        PG_RE_THROW();
    }
    PG_END_TRY();
    pg_write_barrier();
    request->recorded = true;
    dsm_detach(segment);
    proc_exit(0);   // releases the session lock
}
}
