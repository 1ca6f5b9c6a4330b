// Streaming rows into another environment with COPY, on the connection postgres_fdw keeps to a
// foreign table's server for the current user: the one the foreign table's own statements use,
// inside the same remote transaction and savepoints, with the same credentials (the user
// mapping). A batch INSERT through postgres_fdw waits for each batch to be stored there before
// it formats the next; a COPY lets this server format rows while the other stores those before.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "pg/boundary.hpp"

typedef struct pg_conn PGconn;

namespace envsync::pg {

// A postgres_fdw foreign table that the current user may INSERT into (as postgres_fdw would
// refuse it otherwise: no right, or updatable = false), and where its rows go over there.
struct LinkTable {
    PGconn *conn;          // postgres_fdw's connection, its remote transaction begun
    std::string copy_sql;  // COPY <remote relation> (<remote columns>) FROM STDIN
    std::vector<Oid> types;  // of its columns, in order
};
void open_link_table(Oid relid, LinkTable *table);

// A COPY ... FROM STDIN running on a link's connection. send() queues text-format lines and
// waits (interruptibly) while the other server takes them in; finish() ends the COPY and
// raises the other server's error, if any. Destroyed unfinished (an error on this side), it
// fails the COPY over there, so that postgres_fdw's own abort of the remote (sub)transaction
// finds its connection in a state it knows.
class RemoteCopy {
public:
    RemoteCopy(PGconn *conn, std::string sql);
    ~RemoteCopy();
    RemoteCopy(const RemoteCopy &) = delete;
    RemoteCopy &operator=(const RemoteCopy &) = delete;
    void send(const char *data, size_t length);
    void finish();

private:
    PGconn *conn_;
    std::string sql_;
    bool open_ = false;
};

// The output functions of a cursor's columns, which must be those of the link table (their
// caches live in memory).
std::vector<FmgrInfo> copy_outputs(Portal cursor, Oid relid, const LinkTable &table, MemoryContext memory);
// Appends the rows of the last SPI fetch to out in COPY's text format, each value through its
// output function under postgres_fdw's settings for values sent (scratch: reset per row).
// Returns the bytes appended.
size_t append_copy_rows(std::string &out, uint64_t rows, const std::vector<FmgrInfo> &outputs,
                        MemoryContext scratch);

}  // namespace envsync::pg
