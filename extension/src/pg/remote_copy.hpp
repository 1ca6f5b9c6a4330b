// Streaming rows into another environment with COPY on a link's connection
// (pg/link_table.hpp). A batch INSERT through postgres_fdw waits for each batch to be stored
// there before it formats the next; a COPY lets this server format rows while the other
// stores those sent before.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "pg/link_table.hpp"

namespace envsync::pg {

// A COPY ... FROM STDIN running on a link's connection, into the link table's relation there
// (all its columns). send() queues text-format lines and waits (interruptibly) while the other
// server takes them in; finish() ends the COPY and raises the other server's error, if any.
// Destroyed unfinished (an error on this side), it fails the COPY over there, so that
// postgres_fdw's own abort of the remote (sub)transaction finds its connection in a state it
// knows.
class RemoteCopy {
public:
    explicit RemoteCopy(const LinkTable &table);
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
