// The C++/PostgreSQL boundary. Two rules, each owned by one helper here:
//  - no C++ exception reaches PostgreSQL: every extern "C" entry point runs its body through
//    pg_entry(), which catches everything and re-raises it as a PostgreSQL ERROR once every C++
//    frame of the body is unwound;
//  - no PostgreSQL ERROR longjmps over a C++ frame that owns resources: PostgreSQL calls run
//    through pg_call(), which turns the ERROR into a PgError exception.
// The code inside a pg_call() must not own C++ objects with destructors across a PostgreSQL call
// (a longjmp out of it would skip them); the wrappers of pg/ are written that way, and the rest
// of envsync calls PostgreSQL only through them. pg_call() may nest, and a C++ exception thrown
// inside it leaves PostgreSQL's error handling as it was before it.
#pragma once

#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "pg/headers.hpp"

namespace envsync {

// A PostgreSQL error caught in C++: the full ErrorData, palloc'd in the memory context that was
// current when pg_call() was entered, so re-throwing it keeps SQLSTATE, detail, hint and context.
class PgError : public std::exception {
public:
    explicit PgError(ErrorData *data) : data_(data) {}
    const char *what() const noexcept override { return data_->message ? data_->message : "error"; }
    ErrorData *data() const noexcept { return data_; }
    int sqlstate() const noexcept { return data_->sqlerrcode; }

private:
    ErrorData *data_;
};

// An error raised by envsync's own C++ code, with the SQLSTATE and texts the user should see.
class UserError : public std::exception {
public:
    UserError(int sqlstate, std::string message, std::string detail = {}, std::string hint = {})
        : sqlstate_(sqlstate), message_(std::move(message)), detail_(std::move(detail)),
          hint_(std::move(hint)) {}
    const char *what() const noexcept override { return message_.c_str(); }
    int sqlstate() const noexcept { return sqlstate_; }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }

private:
    int sqlstate_;
    std::string message_, detail_, hint_;
};

namespace detail {
// Runs f under PG_TRY and returns the copied PostgreSQL error, or nullptr. A C++ exception out
// of f is caught inside the PG_TRY block and handed back through thrown, so that PG_END_TRY
// always restores PostgreSQL's error stack. Kept apart from the caller's frame so that no
// variable of the caller lives across the setjmp.
template <typename F>
ErrorData *try_pg(F &f, std::exception_ptr &thrown) {
    MemoryContext caller_context = CurrentMemoryContext;
    ErrorData *volatile error = nullptr;
    PG_TRY();
    {
        try {
            f();
        } catch (...) {
            thrown = std::current_exception();
            MemoryContextSwitchTo(caller_context);
        }
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        error = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    return error;
}

template <typename F>
void guarded(F &f) {
    std::exception_ptr thrown;
    if (ErrorData *error = try_pg(f, thrown))
        throw PgError(error);
    if (thrown)
        std::rethrow_exception(thrown);
}
}  // namespace detail

// Runs PostgreSQL code; a PostgreSQL ERROR inside becomes a PgError. The transaction is then
// aborted as far as PostgreSQL is concerned: a PgError must end in pg_entry(), never be swallowed.
template <typename F>
auto pg_call(F &&f) -> decltype(f()) {
    using Result = decltype(f());
    if constexpr (std::is_void_v<Result>) {
        detail::guarded(f);
    } else {
        static_assert(std::is_trivially_copyable_v<Result>,
                      "pg_call returns plain PostgreSQL values only");
        Result result{};
        auto run = [&] { result = f(); };
        detail::guarded(run);
        return result;
    }
}

namespace detail {
// Copies a message out of an exception without any chance of a PostgreSQL ERROR.
inline char *copy_message(const char *text) {
    if (text == nullptr || *text == '\0')
        return nullptr;
    size_t len = strlen(text);
    auto *copy = static_cast<char *>(palloc_extended(len + 1, MCXT_ALLOC_NO_OOM));
    if (copy)
        memcpy(copy, text, len + 1);
    return copy;
}

[[noreturn]] inline void raise(ErrorData *pg_error, int sqlstate, char *message, char *detail, char *hint) {
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
}  // namespace detail

// Runs the body of an extern "C" function: every C++ exception ends here and is re-raised as a
// PostgreSQL ERROR once the catch block is left and every C++ frame of the body is unwound.
template <typename F>
Datum pg_entry(F &&body) noexcept {
    ErrorData *pg_error = nullptr;
    int sqlstate = ERRCODE_INTERNAL_ERROR;
    char *message = nullptr, *detail_text = nullptr, *hint = nullptr;
    try {
        return body();
    } catch (const PgError &e) {
        pg_error = e.data();
    } catch (const UserError &e) {
        sqlstate = e.sqlstate();
        message = detail::copy_message(e.what());
        detail_text = detail::copy_message(e.detail().c_str());
        hint = detail::copy_message(e.hint().c_str());
    } catch (const std::bad_alloc &) {
        sqlstate = ERRCODE_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        message = detail::copy_message(e.what());
    } catch (...) {
    }
    detail::raise(pg_error, sqlstate, message, detail_text, hint);
}

}  // namespace envsync
