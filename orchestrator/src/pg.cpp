#include "pg.h"

#include <vector>

#include <fmt/core.h>

#include "log.h"

namespace envsync::pg {

namespace {

std::string trimmed(const char* message)
{
    std::string text = message ? message : "";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

// libpq would print notices and asynchronous errors (e.g. "terminating connection due to
// administrator command") straight to stderr; route them through the log instead.
void log_notice(void*, const char* message)
{
    log::warning("PostgreSQL: {}", trimmed(message));
}

}  // namespace

std::optional<std::string> Result::get(int row, int column) const
{
    if (PQgetisnull(result_.get(), row, column)) return std::nullopt;
    return std::string(PQgetvalue(result_.get(), row, column),
                       static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}

Connection::Connection(const std::string& conninfo) : conn_(nullptr, &PQfinish)
{
    // expand_dbname: the conninfo string or URI is parsed; an application_name in it wins.
    const char* keywords[] = {"fallback_application_name", "dbname", nullptr};
    const char* values[] = {"envsync-orchestrator", conninfo.c_str(), nullptr};
    conn_.reset(PQconnectdbParams(keywords, values, 1));
    if (!conn_) throw Error("out of memory while connecting to PostgreSQL");
    if (PQstatus(conn_.get()) != CONNECTION_OK) fail("cannot connect to PostgreSQL");
    PQsetNoticeProcessor(conn_.get(), &log_notice, nullptr);
    // Addresses, subjects and payload values must reach the mail as UTF-8 whatever the database says.
    if (PQsetClientEncoding(conn_.get(), "UTF8") != 0) fail("cannot set client_encoding");
}

void Connection::fail(const std::string& what) const
{
    throw Error(fmt::format("{}: {}", what, trimmed(PQerrorMessage(conn_.get()))));
}

Result Connection::exec(const char* sql, std::initializer_list<Param> params)
{
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    PGresult* raw = PQexecParams(conn_.get(), sql, static_cast<int>(values.size()), nullptr, values.data(),
                                 nullptr, nullptr, 0);
    Result result(raw);
    const auto status = PQresultStatus(raw);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail("query failed");
    return result;
}

void Connection::consume_input()
{
    if (!PQconsumeInput(conn_.get()) || PQstatus(conn_.get()) != CONNECTION_OK)
        fail("lost the connection to PostgreSQL");
}

bool Connection::take_notifications()
{
    bool any = false;
    while (PGnotify* n = PQnotifies(conn_.get())) {
        PQfreemem(n);
        any = true;
    }
    return any;
}

std::string Connection::describe() const
{
    const char* host = PQhost(conn_.get());
    return fmt::format("{}@{}:{}/{}", PQuser(conn_.get()), host && *host ? host : "localhost",
                       PQport(conn_.get()), PQdb(conn_.get()));
}

bool Connection::in_transaction() const
{
    return PQtransactionStatus(conn_.get()) != PQTRANS_IDLE;
}

Transaction::Transaction(Connection& conn) : conn_(conn)
{
    conn_.exec("BEGIN");
}

Transaction::~Transaction()
{
    if (!open_ || !conn_.in_transaction()) return;
    try {
        conn_.exec("ROLLBACK");
    } catch (const Error&) {
        // The connection is gone; the server rolls back on its own.
    }
}

void Transaction::commit()
{
    open_ = false;
    conn_.exec("COMMIT");
}

}  // namespace envsync::pg
