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

std::string field(const PGresult* result, int code)
{
    const char* value = PQresultErrorField(result, code);
    return value ? value : "";
}

Report report_of(const PGresult* result)
{
    return {field(result, PG_DIAG_SEVERITY_NONLOCALIZED), field(result, PG_DIAG_SQLSTATE),
            field(result, PG_DIAG_MESSAGE_PRIMARY), field(result, PG_DIAG_MESSAGE_DETAIL),
            field(result, PG_DIAG_MESSAGE_HINT)};
}

}  // namespace

std::optional<std::string> Result::get(int row, int column) const
{
    if (PQgetisnull(result_.get(), row, column)) return std::nullopt;
    return std::string(PQgetvalue(result_.get(), row, column),
                       static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}

Connection::Connection(const std::string& conninfo, const Keywords& overrides, const std::string& application_name)
    : conn_(nullptr, &PQfinish)
{
    // expand_dbname: the conninfo string or URI is parsed; an application_name in it wins, and
    // the overrides, coming after it, win over it.
    std::vector<const char*> keywords{"fallback_application_name", "dbname"};
    std::vector<const char*> values{application_name.c_str(), conninfo.c_str()};
    for (const auto& [keyword, value] : overrides) {
        keywords.push_back(keyword.c_str());
        values.push_back(value.c_str());
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);
    conn_.reset(PQconnectdbParams(keywords.data(), values.data(), 1));
    if (!conn_) throw Error("out of memory while connecting to PostgreSQL");
    if (PQstatus(conn_.get()) != CONNECTION_OK) fail("cannot connect to PostgreSQL");
    // libpq would print notices and asynchronous errors (e.g. "terminating connection due to
    // administrator command") straight to stderr; they go to the handler or the log instead.
    PQsetNoticeReceiver(conn_.get(), &Connection::receive_notice, this);
    // Addresses, subjects and payload values must reach the mail as UTF-8 whatever the database says.
    if (PQsetClientEncoding(conn_.get(), "UTF8") != 0) fail("cannot set client_encoding");
}

void Connection::receive_notice(void* self, const PGresult* notice)
{
    const auto* conn = static_cast<const Connection*>(self);
    if (conn->notice_handler_) {
        conn->notice_handler_(report_of(notice));
        return;
    }
    log::warning("PostgreSQL: {}", trimmed(PQresultErrorMessage(notice)));
}

void Connection::on_notice(NoticeHandler handler)
{
    notice_handler_ = std::move(handler);
}

bool Connection::Canceller::cancel() const
{
    char error[256];
    return cancel_ && PQcancel(cancel_.get(), error, sizeof error) == 1;
}

void Connection::fail(const std::string& what) const
{
    throw Error(fmt::format("{}: {}", what, trimmed(PQerrorMessage(conn_.get()))));
}

Result Connection::exec(const char* sql, std::initializer_list<Param> params)
{
    return exec(sql, std::vector<Param>(params));
}

Result Connection::exec(const char* sql, const std::vector<Param>& params)
{
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    PGresult* raw = PQexecParams(conn_.get(), sql, static_cast<int>(values.size()), nullptr, values.data(),
                                 nullptr, nullptr, 0);
    Result result(raw);
    const auto status = PQresultStatus(raw);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
    // A statement the server refused has its SQLSTATE; a lost connection has none.
    if (raw && PQresultErrorField(raw, PG_DIAG_SQLSTATE))
        throw ServerError(fmt::format("query failed: {}", trimmed(PQerrorMessage(conn_.get()))), report_of(raw));
    fail("query failed");
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
