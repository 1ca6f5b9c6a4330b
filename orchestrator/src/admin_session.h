#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "pg.h"

namespace envsync::admin {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// A pg::Report as the page shows it.
json report_json(const pg::Report& report);

// One logged-in user: their own two PostgreSQL connections (one for requests, one for the long
// operations, so the page stays usable while a comparison runs), a CSRF token, and the
// operation running, if any. No password is kept.
class Session {
public:
    Session(std::string user, std::unique_ptr<pg::Connection> db, std::unique_ptr<pg::Connection> job_db,
            Clock::time_point now);
    // Cancels a running operation and waits for it; the connections close.
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    const std::string& user() const { return user_; }
    const std::string& csrf() const { return csrf_; }

    // Runs fn with the request connection, one request of the session at a time.
    template <typename F>
    auto with_db(F&& fn)
    {
        std::lock_guard lock(db_mutex_);
        return fn(*db_);
    }

    // Starts work on the operation connection in a thread of its own; false while another runs.
    // Progress NOTICEs (SQLSTATE EV100) it raises become the operation's progress.
    using Work = std::function<json(pg::Connection&)>;
    bool start_job(const std::string& kind, Work work);
    // {"id", "kind", "state": running|done|failed, "progress", "result", "error"}, or null.
    json job() const;

    // Whether a connection to the server was lost (the user must log in again).
    bool broken();

    void touch(Clock::time_point now);
    bool expired(Clock::time_point now, Clock::duration idle, Clock::duration lifetime) const;

private:
    void progress(const pg::Report& notice);

    const std::string user_;
    const std::string csrf_;
    const Clock::time_point created_;

    std::mutex db_mutex_;
    std::unique_ptr<pg::Connection> db_;
    std::unique_ptr<pg::Connection> job_db_;
    const pg::Connection::Canceller job_cancel_;

    mutable std::mutex state_mutex_;  // what follows
    Clock::time_point last_seen_;
    bool running_ = false;
    json job_;
    int job_count_ = 0;
    std::thread job_thread_;
};

class SessionsFull : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The sessions by token. Expired ones are dropped (their connections closed) by a sweep every
// few seconds, and refused at once when looked up.
class SessionStore {
public:
    SessionStore(Clock::duration idle, Clock::duration lifetime, int max_sessions);
    ~SessionStore();

    // Returns the new session's token; throws SessionsFull.
    std::string add(std::shared_ptr<Session> session);
    // The live session of a token, marked as used; null if unknown or expired.
    std::shared_ptr<Session> find(const std::string& token);
    void remove(const std::string& token);
    // Drops the expired sessions now.
    void sweep();
    // Sweeps every few seconds in a thread until stop() (or destruction).
    void start_sweeping(Clock::duration every);
    void stop();

private:
    const Clock::duration idle_;
    const Clock::duration lifetime_;
    const std::size_t max_;
    std::mutex mutex_;
    std::map<std::string, std::shared_ptr<Session>> sessions_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread sweeper_;
};

}  // namespace envsync::admin
