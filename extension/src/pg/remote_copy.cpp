#include "pg/remote_copy.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

extern "C" {
#include "libpq-fe.h"
}

namespace envsync::pg {
namespace {

// postgres_fdw's own functions, looked up in its library: its connection for a user mapping
// (with its remote transaction begun), its way of raising an error that came from there, and
// the settings under which it turns values into text for the other server.
struct FdwConnState {
    void *pending_request;  // an asynchronous foreign scan still reading from the connection
};
struct Fdw {
    PGconn *(*get_connection)(UserMapping *, bool, FdwConnState **);
    void (*report_error)(int, PGresult *, PGconn *, bool, const char *);
    int (*set_transmission_modes)();
    void (*reset_transmission_modes)(int);
};

const Fdw &fdw() {
    static Fdw loaded;
    if (loaded.get_connection == nullptr) {
        pg_call([] {
            const char *library = "$libdir/postgres_fdw";
            auto find = [&](const char *name) { return load_external_function(library, name, true, nullptr); };
            loaded.report_error = reinterpret_cast<decltype(Fdw::report_error)>(find("pgfdw_report_error"));
            loaded.set_transmission_modes =
                reinterpret_cast<decltype(Fdw::set_transmission_modes)>(find("set_transmission_modes"));
            loaded.reset_transmission_modes =
                reinterpret_cast<decltype(Fdw::reset_transmission_modes)>(find("reset_transmission_modes"));
            loaded.get_connection = reinterpret_cast<decltype(Fdw::get_connection)>(find("GetConnection"));
        });
    }
    return loaded;
}

const char *option(List *options, const char *name, const char *otherwise) {
    ListCell *cell;
    foreach (cell, options) {
        DefElem *def = lfirst_node(DefElem, cell);
        if (strcmp(def->defname, name) == 0)
            return defGetString(def);
    }
    return otherwise;
}

bool updatable(List *options, bool otherwise) {
    ListCell *cell;
    foreach (cell, options) {
        DefElem *def = lfirst_node(DefElem, cell);
        if (strcmp(def->defname, "updatable") == 0)
            return defGetBoolean(def);
    }
    return otherwise;
}

// Raises the other server's error (res), or the connection's (res NULL), as postgres_fdw does.
[[noreturn]] void raise_remote(PGconn *conn, PGresult *res, const std::string &sql) {
    pg_call([&] { fdw().report_error(ERROR, res, conn, true, sql.c_str()); });
    throw UserError(ERRCODE_CONNECTION_FAILURE, "lost the connection to the other environment");
}

// Waits until the connection's socket is ready for events (readable or writable), or the latch
// is set; a cancel or a timeout meanwhile is an ERROR.
void wait_socket(PGconn *conn, int events) {
    pg_call([&] {
        int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | events, PQsocket(conn), -1L,
                                   PG_WAIT_EXTENSION);
        if (rc & WL_LATCH_SET)
            ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

// The next result of the statement running (NULL once it has none left).
PGresult *next_result(PGconn *conn, const std::string &sql) {
    while (PQisBusy(conn)) {
        wait_socket(conn, WL_SOCKET_READABLE);
        if (!PQconsumeInput(conn))
            raise_remote(conn, nullptr, sql);
    }
    return PQgetResult(conn);
}

void flush(PGconn *conn, const std::string &sql) {
    for (;;) {
        int pending = PQflush(conn);
        if (pending == 0)
            return;
        if (pending < 0)
            raise_remote(conn, nullptr, sql);
        wait_socket(conn, WL_SOCKET_WRITEABLE);
    }
}

// Leaves the connection with no statement running, as postgres_fdw expects it: the statement
// is cancelled (a COPY then only discards what it is sent), a COPY still taking rows is
// failed, and the results are read. Never raises (it runs while an error unwinds); it waits
// for the other server's answer.
void abandon(PGconn *conn) noexcept {
    if (PQtransactionStatus(conn) == PQTRANS_ACTIVE) {
        if (PGcancel *cancel = PQgetCancel(conn)) {
            char message[256];
            PQcancel(cancel, message, sizeof message);
            PQfreeCancel(cancel);
        }
    }
    PQsetnonblocking(conn, 0);
    while (PGresult *res = PQgetResult(conn)) {
        bool copying = PQresultStatus(res) == PGRES_COPY_IN;
        PQclear(res);
        if (copying && PQputCopyEnd(conn, "the sending side failed") != 1)
            break;
        if (PQstatus(conn) == CONNECTION_BAD)
            break;
    }
}

}  // namespace

void open_link_table(Oid relid, LinkTable *table) {
    struct Found {
        PGconn *conn;
        char *sql;
        Oid *types;
        int columns;
    };
    Found found = pg_call([&] {
        char *name = get_rel_name(relid);
        if (name == nullptr)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relid)));
        if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
            ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("\"%s\" is not a foreign table", name)));
        ForeignTable *foreign = GetForeignTable(relid);
        ForeignServer *server = GetForeignServer(foreign->serverid);
        if (strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "postgres_fdw") != 0)
            ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                            errmsg("foreign table \"%s\" is not a postgres_fdw table", name)));
        AclResult allowed = pg_class_aclcheck(relid, GetUserId(), ACL_INSERT);
        if (allowed != ACLCHECK_OK)
            aclcheck_error(allowed, OBJECT_FOREIGN_TABLE, name);
        if (!updatable(foreign->options, updatable(server->options, true)))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("foreign table \"%s\" does not allow inserts", name)));

        StringInfoData sql;
        initStringInfo(&sql);
        appendStringInfo(&sql, "COPY %s.%s (",
                         quote_identifier(option(foreign->options, "schema_name",
                                                 get_namespace_name(get_rel_namespace(relid)))),
                         quote_identifier(option(foreign->options, "table_name", name)));
        Relation rel = table_open(relid, AccessShareLock);
        TupleDesc desc = RelationGetDescr(rel);
        Oid *types = static_cast<Oid *>(palloc(sizeof(Oid) * (desc->natts + 1)));
        int columns = 0;
        for (int i = 0; i < desc->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            if (att->attisdropped)
                continue;
            appendStringInfo(&sql, "%s%s", columns > 0 ? ", " : "",
                             quote_identifier(option(GetForeignColumnOptions(relid, att->attnum), "column_name",
                                                     NameStr(att->attname))));
            types[columns++] = att->atttypid;
        }
        table_close(rel, AccessShareLock);
        appendStringInfoString(&sql, ") FROM STDIN");

        FdwConnState *state = nullptr;
        PGconn *conn = fdw().get_connection(GetUserMapping(GetUserId(), server->serverid), false, &state);
        if (state != nullptr && state->pending_request != nullptr)
            elog(ERROR, "envsync: a foreign scan is still reading from server \"%s\"", server->servername);
        return Found{conn, sql.data, types, columns};
    });
    table->conn = found.conn;
    table->copy_sql = found.sql;
    table->types.assign(found.types, found.types + found.columns);
    pg_call([&] {
        pfree(found.sql);
        pfree(found.types);
    });
}

RemoteCopy::RemoteCopy(PGconn *conn, std::string sql) : conn_(conn), sql_(std::move(sql)) {
    if (!PQsendQuery(conn_, sql_.c_str()))
        raise_remote(conn_, nullptr, sql_);
    PGresult *refused = nullptr;
    try {
        while (PGresult *res = next_result(conn_, sql_)) {
            if (PQresultStatus(res) == PGRES_COPY_IN) {
                PQclear(res);
                open_ = true;
                break;
            }
            PQclear(refused);
            refused = res;
        }
        if (!open_) {
            PGresult *res = std::exchange(refused, nullptr);
            raise_remote(conn_, res, sql_);  // (which frees it)
        }
        if (PQsetnonblocking(conn_, 1) != 0)
            raise_remote(conn_, nullptr, sql_);
    } catch (...) {
        PQclear(refused);
        abandon(conn_);
        throw;
    }
}

RemoteCopy::~RemoteCopy() {
    if (open_)
        abandon(conn_);
}

void RemoteCopy::send(const char *data, size_t length) {
    // in slices, so that libpq's buffer stays small whatever the caller hands over
    constexpr size_t slice = 256 * 1024;
    for (size_t at = 0; at < length; at += slice) {
        int bytes = static_cast<int>(std::min(slice, length - at));
        for (;;) {
            int queued = PQputCopyData(conn_, data + at, bytes);
            if (queued < 0)
                raise_remote(conn_, nullptr, sql_);
            if (queued == 1)
                break;
            wait_socket(conn_, WL_SOCKET_WRITEABLE);
        }
        flush(conn_, sql_);
    }
}

void RemoteCopy::finish() {
    for (;;) {
        int queued = PQputCopyEnd(conn_, nullptr);
        if (queued < 0)
            raise_remote(conn_, nullptr, sql_);
        if (queued == 1)
            break;
        wait_socket(conn_, WL_SOCKET_WRITEABLE);
    }
    flush(conn_, sql_);
    PGresult *last = nullptr;
    while (PGresult *res = next_result(conn_, sql_)) {
        PQclear(last);
        last = res;
    }
    open_ = false;
    PQsetnonblocking(conn_, 0);
    if (last == nullptr || PQresultStatus(last) != PGRES_COMMAND_OK)
        raise_remote(conn_, last, sql_);
    PQclear(last);
}

std::vector<FmgrInfo> copy_outputs(Portal cursor, Oid relid, const LinkTable &table, MemoryContext memory) {
    std::vector<FmgrInfo> outputs(table.types.size());
    pg_call([&] {
        TupleDesc desc = cursor->tupDesc;
        bool same = desc != nullptr && size_t(desc->natts) == table.types.size();
        for (int i = 0; same && i < desc->natts; i++)
            same = TupleDescAttr(desc, i)->atttypid == table.types[i];
        if (!same)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("the rows of cursor \"%s\" do not match the columns of foreign table %s",
                                   cursor->name, get_rel_name(relid))));
        for (int i = 0; i < desc->natts; i++) {
            Oid function;
            bool varlena;
            getTypeOutputInfo(table.types[i], &function, &varlena);
            fmgr_info_cxt(function, &outputs[i], memory);
        }
    });
    return outputs;
}

size_t append_copy_rows(std::string &out, uint64_t rows, const std::vector<FmgrInfo> &outputs,
                        MemoryContext scratch) {
    return pg_call([&] {
        size_t start = out.size();
        int settings = fdw().set_transmission_modes();
        MemoryContext caller = MemoryContextSwitchTo(scratch);
        TupleDesc desc = SPI_tuptable->tupdesc;
        for (uint64_t row = 0; row < rows; row++) {
            HeapTuple tuple = SPI_tuptable->vals[row];
            for (int column = 0; column < desc->natts; column++) {
                if (column > 0)
                    out.push_back('\t');
                bool isnull;
                Datum value = SPI_getbinval(tuple, desc, column + 1, &isnull);
                if (isnull) {
                    out.append("\\N");
                    continue;
                }
                // (the output function's own cache is in its FmgrInfo's memory, not here)
                const char *text = OutputFunctionCall(const_cast<FmgrInfo *>(&outputs[column]), value);
                // COPY's text format: backslash, tab, newline and carriage return escaped
                for (;;) {
                    size_t plain = strcspn(text, "\\\t\n\r");
                    out.append(text, plain);
                    text += plain;
                    if (*text == '\0')
                        break;
                    out.push_back('\\');
                    out.push_back(*text == '\t' ? 't' : *text == '\n' ? 'n' : *text == '\r' ? 'r' : '\\');
                    text++;
                }
            }
            out.push_back('\n');
            MemoryContextReset(scratch);
        }
        MemoryContextSwitchTo(caller);
        fdw().reset_transmission_modes(settings);
        return out.size() - start;
    });
}

}  // namespace envsync::pg
