// envsync.copy_to_link(link_table regclass, records refcursor) -> bigint
//
// Streams the rows of an open cursor into the remote relation of a postgres_fdw foreign table
// of a link schema, with one COPY on postgres_fdw's own connection (pg/remote_copy.hpp): in the
// remote transaction the link's statements run in, with the rights an INSERT into the foreign
// table would need. An apply stages its records this way; this server formats rows while the
// other stores those sent before. The rows are fetched in parts of about envsync.batch_bytes
// (as many as the bytes per row of the part before allow, at most twice as many, at most
// 1,000), so a large record never makes a part of 1,000 of them. Returns how many rows went.
#include <algorithm>
#include <string>

#include "pg/remote_copy.hpp"
#include "pg/results.hpp"
#include "pg/rows.hpp"
#include "pg/spi.hpp"
#include "settings.hpp"

namespace envsync {
namespace {

constexpr long first_part = 32;
constexpr long most_part = 1000;

Datum copy_to_link(FunctionCallInfo fcinfo) {
    Oid relid = PG_GETARG_OID(0);
    std::string cursor_name = pg::text_argument(fcinfo, 1);
    pg::LinkTable link;
    pg::open_link_table(relid, &link);
    pg::connect();
    Portal cursor = pg::find_cursor(cursor_name);
    pg::CacheMemory function_memory("envsync copy_to_link outputs");
    pg::CacheMemory row_memory("envsync copy_to_link row");
    std::vector<FmgrInfo> outputs = pg::copy_outputs(cursor, relid, link, function_memory.get());
    int64 budget = int64(settings::batch_kilobytes) * 1024;
    pg::RemoteCopy copy(link);
    std::string lines;
    long part = first_part;
    int64 sent = 0;
    for (;;) {
        uint64_t rows = pg::fetch(cursor, part);
        if (rows == 0)
            break;
        size_t bytes = pg::append_copy_rows(lines, rows, outputs, row_memory.get());
        pg::free_rows();
        copy.send(lines.data(), lines.size());
        lines.clear();
        sent += int64(rows);
        int64 fits = bytes > 0 ? int64(rows) * budget / int64(bytes) : most_part;
        part = long(std::clamp<int64>(fits, 1, std::min<int64>(int64(part) * 2, most_part)));
    }
    copy.finish();
    pg::finish();
    PG_RETURN_INT64(sent);
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_copy_to_link);
Datum envsync_copy_to_link(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::copy_to_link(fcinfo); });
}
}
