#pragma once

#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <libpq-fe.h>

// Thin RAII layer over libpq: owned handles, exceptions instead of status checks.
namespace envsync::pg {

// Any failure: the caller drops the connection and reconnects, whatever the cause.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
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

class Connection {
public:
    // Connects (blocking), sets client_encoding UTF8; throws Error.
    explicit Connection(const std::string& conninfo);

    Result exec(const char* sql, std::initializer_list<Param> params = {});

    int socket() const { return PQsocket(conn_.get()); }
    // Reads whatever arrived on the socket; throws Error when the server has gone away.
    void consume_input();
    // Drops queued notifications; true if there were any.
    bool take_notifications();
    // user@host:port/dbname, never the password.
    std::string describe() const;
    bool in_transaction() const;

private:
    [[noreturn]] void fail(const std::string& what) const;
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
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
