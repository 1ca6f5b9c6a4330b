// Another environment's relations as postgres_fdw foreign tables of a link schema, reached on
// the connection postgres_fdw keeps to the foreign table's server for the current user: the one
// the foreign table's own statements use, inside the same remote transaction and savepoints,
// with the same credentials (the user mapping). envsync sends its bulk writes and its longest
// request there itself (pg/remote_copy.hpp, link_request.cpp), in ways postgres_fdw has not:
// a COPY, and a request that runs while this server works on.
#pragma once

#include <string>
#include <vector>

#include "pg/boundary.hpp"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace envsync::pg {

struct LinkColumn {
    std::string name;    // here
    std::string remote;  // there, quoted
    Oid type;
    std::string type_name;  // qualified
};

// A postgres_fdw foreign table that the current user may INSERT into (as postgres_fdw would
// refuse it otherwise: no right, or updatable = false), and what it stands for over there.
struct LinkTable {
    PGconn *conn;          // postgres_fdw's connection, its remote transaction begun
    std::string relation;  // there, quoted
    std::vector<LinkColumn> columns;
};
void open_link_table(Oid relid, LinkTable *table);

// Raises the other server's error (res, freed), or the connection's (res NULL), as postgres_fdw does.
[[noreturn]] void raise_remote(PGconn *conn, PGresult *res, const std::string &sql);
// Waits until the connection's socket is ready for events (WL_SOCKET_READABLE or _WRITEABLE);
// a cancel or a timeout meanwhile is an ERROR.
void wait_socket(PGconn *conn, int events);
// The next result of the statement running (NULL once it has none left), waiting for it.
PGresult *next_result(PGconn *conn, const std::string &sql);
// Sends what libpq holds for the connection, waiting while the other server takes it in.
void flush(PGconn *conn, const std::string &sql);
// Leaves the connection with no statement running, as postgres_fdw expects it: the statement
// is cancelled (a COPY then only discards what it is sent), a COPY still taking rows is
// failed, and the results are read. Never raises (it runs while an error unwinds); it waits
// for the other server's answer.
void abandon(PGconn *conn) noexcept;
// postgres_fdw's settings for values sent (dates in ISO, ...), until reset_transmission_modes.
int set_transmission_modes();
void reset_transmission_modes(int level);

}  // namespace envsync::pg
