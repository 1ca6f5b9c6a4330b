#include "pg_boundary.hpp"

namespace envsync::detail {

void raise(ErrorData *pg_error, int sqlstate, char *message, char *detail, char *hint) {
    if (pg_error)
        ReThrowError(pg_error);
    if (sqlstate == ERRCODE_OUT_OF_MEMORY)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    ereport(ERROR, (errcode(sqlstate),
                    message ? errmsg_internal("%s", message) : errmsg("unexpected internal error"),
                    detail ? errdetail_internal("%s", detail) : 0,
                    hint ? errhint("%s", hint) : 0));
    pg_unreachable();
}

} // namespace envsync::detail
