#include "pg/link_table.hpp"

#include <cstring>

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

DefElem *option(List *options, const char *name) {
    ListCell *cell;
    foreach (cell, options) {
        DefElem *def = lfirst_node(DefElem, cell);
        if (strcmp(def->defname, name) == 0)
            return def;
    }
    return nullptr;
}

const char *text_option(List *options, const char *name, const char *otherwise) {
    DefElem *def = option(options, name);
    return def ? defGetString(def) : otherwise;
}

}  // namespace

void open_link_table(Oid relid, LinkTable *table) {
    struct Found {
        PGconn *conn;
        char *relation;
        List *columns;  // of (local name, remote name, type name) triples, and the types
        List *types;
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
        DefElem *updatable = option(foreign->options, "updatable");
        if (updatable == nullptr)
            updatable = option(server->options, "updatable");
        if (updatable != nullptr && !defGetBoolean(updatable))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("foreign table \"%s\" does not allow inserts", name)));

        Found result{};
        result.relation = psprintf(
            "%s.%s",
            quote_identifier(text_option(foreign->options, "schema_name", get_namespace_name(get_rel_namespace(relid)))),
            quote_identifier(text_option(foreign->options, "table_name", name)));
        Relation rel = table_open(relid, AccessShareLock);
        TupleDesc desc = RelationGetDescr(rel);
        for (int i = 0; i < desc->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            if (att->attisdropped)
                continue;
            const char *remote = text_option(GetForeignColumnOptions(relid, att->attnum), "column_name",
                                             NameStr(att->attname));
            result.columns = lappend(result.columns, pstrdup(NameStr(att->attname)));
            result.columns = lappend(result.columns, pstrdup(quote_identifier(remote)));
            result.columns = lappend(result.columns,
                                     format_type_extended(att->atttypid, att->atttypmod, FORMAT_TYPE_FORCE_QUALIFY));
            result.types = lappend_oid(result.types, att->atttypid);
        }
        table_close(rel, AccessShareLock);

        FdwConnState *state = nullptr;
        result.conn = fdw().get_connection(GetUserMapping(GetUserId(), server->serverid), false, &state);
        if (state != nullptr && state->pending_request != nullptr)
            elog(ERROR, "envsync: a foreign scan is still reading from server \"%s\"", server->servername);
        return result;
    });
    table->conn = found.conn;
    table->relation = found.relation;
    table->columns.clear();
    for (int i = 0; i < list_length(found.types); i++)
        table->columns.push_back(LinkColumn{static_cast<char *>(list_nth(found.columns, 3 * i)),
                                            static_cast<char *>(list_nth(found.columns, 3 * i + 1)),
                                            list_nth_oid(found.types, i),
                                            static_cast<char *>(list_nth(found.columns, 3 * i + 2))});
    pg_call([&] {
        pfree(found.relation);
        list_free_deep(found.columns);
        list_free(found.types);
    });
}

void raise_remote(PGconn *conn, PGresult *res, const std::string &sql) {
    pg_call([&] { fdw().report_error(ERROR, res, conn, true, sql.c_str()); });
    throw UserError(ERRCODE_CONNECTION_FAILURE, "lost the connection to the other environment");
}

void wait_socket(PGconn *conn, int events) {
    pg_call([&] {
        int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | events, PQsocket(conn), -1L,
                                   PG_WAIT_EXTENSION);
        if (rc & WL_LATCH_SET)
            ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

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

int set_transmission_modes() {
    return pg_call([] { return fdw().set_transmission_modes(); });
}

void reset_transmission_modes(int level) {
    pg_call([&] { fdw().reset_transmission_modes(level); });
}

}  // namespace envsync::pg
