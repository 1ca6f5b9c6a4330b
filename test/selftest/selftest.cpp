// Diagnostics that prove the C++/PostgreSQL boundary of envsync (extension/src/pg/boundary.hpp)
// from SQL, in a library of the test suite's own (selftest.sql declares the functions):
//   selftest.throw_error(kind text)      a C++ exception thrown under live C++ objects
//   selftest.pg_error(kind text)         a PostgreSQL ERROR raised under live C++ objects, also
//                                        inside nested pg_call()s and across a C++ exception
//                                        thrown inside one
//   selftest.live_objects() -> int       C++ objects of these tests not yet destroyed
//   selftest.heap_bytes() -> bigint      bytes allocated on the C++ heap (malloc)
#include <malloc.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pg/boundary.hpp"

namespace envsync {
namespace {

int live_objects = 0;

// Owns heap memory, as real C++ code would; counted so a skipped destructor shows.
class Resource {
public:
    Resource() : buffer_(std::make_unique<std::vector<char>>(4096)) { ++live_objects; }
    ~Resource() { --live_objects; }
    Resource(const Resource &) = delete;
    Resource &operator=(const Resource &) = delete;

private:
    std::unique_ptr<std::vector<char>> buffer_;
};

std::string text_arg(FunctionCallInfo fcinfo) {
    return pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
}

[[noreturn]] void throw_deep(const std::string &kind, int depth) {
    Resource held;
    if (depth > 0)
        throw_deep(kind, depth - 1);
    if (kind == "user")
        throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "selftest user error",
                        "raised by C++ code", "nothing to do");
    if (kind == "bad_alloc")
        throw std::bad_alloc();
    if (kind == "std")
        throw std::runtime_error("selftest std::runtime_error");
    throw 42;  // not derived from std::exception
}

Datum selftest_throw(FunctionCallInfo fcinfo) {
    std::string kind = text_arg(fcinfo);
    throw_deep(kind, 3);
}

Datum selftest_pg_error(FunctionCallInfo fcinfo) {
    std::string kind = text_arg(fcinfo);
    Resource held;
    std::vector<Resource> more(3);
    if (kind == "division_by_zero")
        return pg_call([] { return DirectFunctionCall2(int4div, Int32GetDatum(1), Int32GetDatum(0)); });
    if (kind == "sql")  // an error from SPI, with its own context lines
        pg_call([] {
            SPI_connect();
            SPI_execute("SELECT 'not a number'::integer", true, 0);
            SPI_finish();
        });
    if (kind == "nested")  // an ERROR two pg_call()s deep comes out of both as itself
        pg_call([] { pg_call([] { DirectFunctionCall2(int4div, Int32GetDatum(1), Int32GetDatum(0)); }); });
    if (kind == "after_throw") {
        // A C++ exception thrown inside pg_call() leaves PostgreSQL's error handling as it was:
        // the ERROR raised next is caught by its own pg_call(), not by a dead frame.
        try {
            pg_call([] { throw std::runtime_error("thrown inside pg_call"); });
        } catch (const std::runtime_error &) {
        }
        return pg_call([] { return DirectFunctionCall2(int4div, Int32GetDatum(1), Int32GetDatum(0)); });
    }
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown selftest kind \"" + kind + "\"");
}

}  // namespace
}  // namespace envsync

extern "C" {
PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(envsync_selftest_throw);
Datum envsync_selftest_throw(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::selftest_throw(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_selftest_pg_error);
Datum envsync_selftest_pg_error(PG_FUNCTION_ARGS) {
    return envsync::pg_entry([&] { return envsync::selftest_pg_error(fcinfo); });
}
PG_FUNCTION_INFO_V1(envsync_selftest_live_objects);
Datum envsync_selftest_live_objects(PG_FUNCTION_ARGS) {
    PG_RETURN_INT32(envsync::live_objects);
}
PG_FUNCTION_INFO_V1(envsync_selftest_heap_bytes);
Datum envsync_selftest_heap_bytes(PG_FUNCTION_ARGS) {
    PG_RETURN_INT64(static_cast<int64>(mallinfo2().uordblks));
}
}
