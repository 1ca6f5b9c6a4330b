#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <libpq-fe.h>

// Thin RAII layer over libpq: owned handles, exceptions instead of status checks.
namespace envsync::pg {

// Any failure: the caller drops the connection and reconnects, whatever the cause.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The fields of an error or notice the server reported (PQresultErrorField).
struct Report {
    std::string severity;  // ERROR, NOTICE, ... (not localized)
    std::string sqlstate;
    std::string message;
    std::string detail;
    std::string hint;
};

// A statement the server refused: what() is libpq's full text, report() its parts.
class ServerError : public Error {
public:
    ServerError(const std::string& what, Report report) : Error(what), report_(std::move(report)) {}
    const Report& report() const { return report_; }

private:
    Report report_;
};

class Result {
public:
    explicit Result(PGresult* result) : result_(result, &PQclear) {}
    int rows() const { return PQntuples(result_.get()); }
    // nullopt for SQL NULL.
    std::optional<std::string> get(int row, int column) const;
    std::string text(int row, int column) const { return get(row, column).value_or(""); }

private:
    std::unique_ptr<PGresult, decltype(&PQclear)> result_;
};

using Param = std::optional<std::string>;

// Connection parameters given apart from the connection string (libpq keywords), e.g. the
// user and password someone typed: they win over the string's.
using Keywords = std::vector<std::pair<std::string, std::string>>;

class Connection {
public:
    // Connects (blocking), sets client_encoding UTF8; throws Error.
    explicit Connection(const std::string& conninfo, const Keywords& overrides = {},
                        const std::string& application_name = "envsync-orchestrator");
    // The server keeps a pointer to it for notices: it stays where it was made.
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    Result exec(const char* sql, std::initializer_list<Param> params = {});
    Result exec(const char* sql, const std::vector<Param>& params);

    int socket() const { return PQsocket(conn_.get()); }
    // Reads whatever arrived on the socket; throws Error when the server has gone away.
    void consume_input();
    // Drops queued notifications; true if there were any.
    bool take_notifications();
    // user@host:port/dbname, never the password.
    std::string describe() const;
    bool in_transaction() const;
    bool broken() const { return PQstatus(conn_.get()) != CONNECTION_OK; }
    // Whether the server asked for the password to authenticate this connection.
    bool used_password() const { return PQconnectionUsedPassword(conn_.get()) == 1; }

    // Notices and warnings the server sends while a statement runs go to handler, on the
    // thread running the statement (by default they are logged).
    using NoticeHandler = std::function<void(const Report&)>;
    void on_notice(NoticeHandler handler);

    // Asks the server to cancel the statement this connection runs; callable from any thread
    // (PQcancel), also while exec() blocks in another one.
    class Canceller {
    public:
        explicit Canceller(PGconn* conn) : cancel_(PQgetCancel(conn), &PQfreeCancel) {}
        bool cancel() const;

    private:
        std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> cancel_;
    };
    Canceller canceller() const { return Canceller(conn_.get()); }

private:
    [[noreturn]] void fail(const std::string& what) const;
    static void receive_notice(void* self, const PGresult* notice);
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
    NoticeHandler notice_handler_;
};

// Rolls back unless commit() was called.
class Transaction {
public:
    explicit Transaction(Connection& conn);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Connection& conn_;
    bool open_ = true;
};

}  // namespace envsync::pg
