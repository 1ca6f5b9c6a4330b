// envsync.send_to_link(link_table regclass, "row" jsonb) -> void
// envsync.answer_from_link(link_table regclass) -> jsonb
//
// A request to another environment that runs there while this server goes on: send_to_link
// inserts the row into the relation a link table stands for there (the object's keys name the
// columns, each value's text is a JSON string's own or the JSON of any other value), with the
// rights an INSERT into the foreign table needs, in postgres_fdw's remote transaction
// (pg/link_table.hpp); answer_from_link waits for it and returns the row the other server
// inserted, its triggers' answers included. Meanwhile the connection serves nothing else
// (postgres_fdw refuses: another command is already in progress), and an error in between
// cancels the request with the (sub)transaction. An apply has TEST write its records this way
// while PROD keeps the pair's bookkeeping.
#include <string>
#include <vector>

#include "pg/link_table.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "libpq-fe.h"
}

namespace envsync {
namespace {

// The statement sent last, for the errors of its answer.
struct Pending {
    Oid relid = InvalidOid;
    std::string sql;
};
Pending pending;

Datum send_to_link(FunctionCallInfo fcinfo) {
    Oid relid = PG_GETARG_OID(0);
    Datum row = PG_GETARG_DATUM(1);
    pg::LinkTable link;
    pg::open_link_table(relid, &link);
    pg::connect();
    uint64_t fields = pg::execute("SELECT key, CASE jsonb_typeof(value) WHEN 'string' THEN value #>> '{}' "
                                  "WHEN 'null' THEN NULL ELSE value::text END "
                                  "FROM pg_catalog.jsonb_each($1)",
                                  pg::Params().add(JSONBOID, row), true);
    std::string columns, values;
    std::vector<std::string> texts(fields);
    std::vector<const char *> params(fields);
    for (uint64_t i = 0; i < fields; i++) {
        std::string key = pg::text_value(i, 1);
        const pg::LinkColumn *column = nullptr;
        for (const pg::LinkColumn &c : link.columns)
            if (c.name == key)
                column = &c;
        if (column == nullptr)
            throw UserError(ERRCODE_UNDEFINED_COLUMN, "foreign table has no column \"" + key + "\"",
                            "The row's keys name the columns of the link table.");
        columns += (i > 0 ? ", " : "") + column->remote;
        values += (i > 0 ? ", $" : "$") + std::to_string(i + 1) + "::" + column->type_name;
        bool isnull;
        pg::value(i, 2, &isnull);
        texts[i] = pg::text_value(i, 2);
        params[i] = isnull ? nullptr : texts[i].c_str();
    }
    pg::finish();
    if (fields == 0)
        throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "the row to send has no columns");
    pending.relid = InvalidOid;
    pending.sql = "INSERT INTO " + link.relation + " AS r (" + columns + ") VALUES (" + values +
                  ") RETURNING pg_catalog.to_jsonb(r.*)";
    if (!PQsendQueryParams(link.conn, pending.sql.c_str(), int(fields), nullptr, params.data(), nullptr, nullptr, 0))
        pg::raise_remote(link.conn, nullptr, pending.sql);
    pg::flush(link.conn, pending.sql);
    pending.relid = relid;
    PG_RETURN_VOID();
}

Datum answer_from_link(FunctionCallInfo fcinfo) {
    Oid relid = PG_GETARG_OID(0);
    if (pending.relid != relid)
        throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "no request to this foreign table awaits its answer",
                        {}, "Send it first with envsync.send_to_link().");
    pending.relid = InvalidOid;
    pg::LinkTable link;
    pg::open_link_table(relid, &link);
    PGresult *last = nullptr;
    try {
        while (PGresult *res = pg::next_result(link.conn, pending.sql)) {
            PQclear(last);
            last = res;
        }
    } catch (...) {
        PQclear(last);
        throw;
    }
    if (last == nullptr || PQresultStatus(last) != PGRES_TUPLES_OK || PQntuples(last) != 1)
        pg::raise_remote(link.conn, last, pending.sql);
    std::string text = PQgetvalue(last, 0, 0);
    PQclear(last);
    return pg_call([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(text.c_str())); });
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_FUNCTION_INFO_V1(envsync_send_to_link);
Datum envsync_send_to_link(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::send_to_link(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_answer_from_link);
Datum envsync_answer_from_link(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::answer_from_link(fcinfo); });
}
}
