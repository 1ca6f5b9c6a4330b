#include "pg/remote_copy.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

extern "C" {
#include "libpq-fe.h"
}

namespace envsync::pg {

namespace {

std::string copy_statement(const LinkTable &table) {
    std::string sql = "COPY " + table.relation + " (";
    for (size_t i = 0; i < table.columns.size(); i++)
        sql += (i > 0 ? ", " : "") + table.columns[i].remote;
    return sql + ") FROM STDIN";
}

// Retries a libpq call that queues output (1: queued, 0: its buffer is full, -1: an error)
// until it has queued, waiting for the socket meanwhile.
template <typename Put>
void queue(PGconn *conn, const std::string &sql, Put &&put) {
    for (;;) {
        int queued = put();
        if (queued < 0)
            raise_remote(conn, nullptr, sql);
        if (queued == 1)
            return;
        wait_socket(conn, WL_SOCKET_WRITEABLE);
    }
}

}  // namespace

RemoteCopy::RemoteCopy(const LinkTable &table) : conn_(table.conn), sql_(copy_statement(table)) {
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
        queue(conn_, sql_, [&] { return PQputCopyData(conn_, data + at, bytes); });
        flush(conn_, sql_);
    }
}

void RemoteCopy::finish() {
    queue(conn_, sql_, [&] { return PQputCopyEnd(conn_, nullptr); });
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
    std::vector<FmgrInfo> outputs(table.columns.size());
    pg_call([&] {
        TupleDesc desc = cursor->tupDesc;
        bool same = desc != nullptr && size_t(desc->natts) == table.columns.size();
        for (int i = 0; same && i < desc->natts; i++)
            same = TupleDescAttr(desc, i)->atttypid == table.columns[i].type;
        if (!same)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("the rows of cursor \"%s\" do not match the columns of foreign table %s",
                                   cursor->name, get_rel_name(relid))));
        for (int i = 0; i < desc->natts; i++) {
            Oid function;
            bool varlena;
            getTypeOutputInfo(table.columns[i].type, &function, &varlena);
            fmgr_info_cxt(function, &outputs[i], memory);
        }
    });
    return outputs;
}

size_t append_copy_rows(std::string &out, uint64_t rows, const std::vector<FmgrInfo> &outputs,
                        MemoryContext scratch) {
    return pg_call([&] {
        size_t start = out.size();
        int settings = set_transmission_modes();
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
        reset_transmission_modes(settings);
        return out.size() - start;
    });
}

}  // namespace envsync::pg
