#include "admin_session.h"

#include <vector>

#include "admin_http.h"
#include "log.h"

namespace envsync::admin {

json report_json(const pg::Report& report)
{
    return {{"sqlstate", report.sqlstate}, {"message", report.message}, {"detail", report.detail},
            {"hint", report.hint}};
}

Session::Session(std::string user, std::unique_ptr<pg::Connection> db, std::unique_ptr<pg::Connection> job_db,
                 Clock::time_point now)
    : user_(std::move(user)),
      csrf_(http::random_token()),
      created_(now),
      db_(std::move(db)),
      job_db_(std::move(job_db)),
      job_cancel_(job_db_->canceller()),
      last_seen_(now)
{
    // Notices carry the user's data: not for the log. Those of operations are their progress.
    db_->on_notice([](const pg::Report&) {});
    job_db_->on_notice([this](const pg::Report& notice) { progress(notice); });
}

Session::~Session()
{
    bool running;
    {
        std::lock_guard lock(state_mutex_);
        running = running_;
    }
    if (running) job_cancel_.cancel();
    if (job_thread_.joinable()) job_thread_.join();
}

void Session::progress(const pg::Report& notice)
{
    if (notice.sqlstate != "EV100") return;
    json detail = json::parse(notice.detail, nullptr, false);
    if (!detail.is_object()) return;
    std::lock_guard lock(state_mutex_);
    job_["progress"] = std::move(detail);
}

bool Session::start_job(const std::string& kind, Work work)
{
    std::lock_guard lock(state_mutex_);
    if (running_) return false;
    if (job_thread_.joinable()) job_thread_.join();  // the previous one has finished
    running_ = true;
    job_ = {{"id", ++job_count_}, {"kind", kind}, {"state", "running"}, {"progress", nullptr},
            {"result", nullptr}, {"error", nullptr}};
    job_thread_ = std::thread([this, work = std::move(work)] {
        json result;
        json error;
        try {
            result = work(*job_db_);
        } catch (const pg::ServerError& e) {
            error = report_json(e.report());
        } catch (const std::exception& e) {
            error = report_json({"ERROR", "", e.what(), "", ""});
        }
        std::lock_guard done(state_mutex_);
        running_ = false;
        job_["state"] = error.is_null() ? "done" : "failed";
        job_["result"] = std::move(result);
        job_["error"] = std::move(error);
        last_seen_ = std::max(last_seen_, Clock::now());
    });
    return true;
}

json Session::job() const
{
    std::lock_guard lock(state_mutex_);
    return job_;
}

bool Session::broken()
{
    std::lock_guard lock(db_mutex_);
    std::lock_guard state(state_mutex_);
    return db_->broken() || (!running_ && job_db_->broken());
}

void Session::touch(Clock::time_point now)
{
    std::lock_guard lock(state_mutex_);
    last_seen_ = std::max(last_seen_, now);
}

bool Session::expired(Clock::time_point now, Clock::duration idle, Clock::duration lifetime) const
{
    std::lock_guard lock(state_mutex_);
    if (now - created_ > lifetime) return true;
    // A running operation keeps its session: it ends by itself, then the idle time counts.
    return !running_ && now - last_seen_ > idle;
}

SessionStore::SessionStore(Clock::duration idle, Clock::duration lifetime, int max_sessions)
    : idle_(idle), lifetime_(lifetime), max_(static_cast<std::size_t>(max_sessions))
{
}

SessionStore::~SessionStore()
{
    stop();
}

std::string SessionStore::add(std::shared_ptr<Session> session)
{
    sweep();
    std::lock_guard lock(mutex_);
    if (sessions_.size() >= max_) throw SessionsFull("too many users are logged in; try again later");
    auto token = http::random_token();
    sessions_.emplace(token, std::move(session));
    return token;
}

std::shared_ptr<Session> SessionStore::find(const std::string& token)
{
    std::shared_ptr<Session> expired;  // released after the lock: closing it waits for its operation
    std::lock_guard lock(mutex_);
    const auto it = sessions_.find(token);
    if (it == sessions_.end()) return nullptr;
    const auto now = Clock::now();
    if (it->second->expired(now, idle_, lifetime_)) {
        expired = std::move(it->second);
        sessions_.erase(it);
        return nullptr;
    }
    it->second->touch(now);
    return it->second;
}

void SessionStore::remove(const std::string& token)
{
    std::shared_ptr<Session> removed;
    std::lock_guard lock(mutex_);
    if (const auto it = sessions_.find(token); it != sessions_.end()) {
        removed = std::move(it->second);
        sessions_.erase(it);
    }
}

void SessionStore::sweep()
{
    std::vector<std::shared_ptr<Session>> expired;
    {
        std::lock_guard lock(mutex_);
        const auto now = Clock::now();
        for (auto it = sessions_.begin(); it != sessions_.end();) {
            if (it->second->expired(now, idle_, lifetime_)) {
                log::info("session of {} expired", it->second->user());
                expired.push_back(std::move(it->second));
                it = sessions_.erase(it);
            } else {
                ++it;
            }
        }
    }
}

void SessionStore::start_sweeping(Clock::duration every)
{
    sweeper_ = std::thread([this, every] {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            wake_.wait_for(lock, every, [this] { return stopping_; });
            if (stopping_) break;
            lock.unlock();
            sweep();
            lock.lock();
        }
    });
}

void SessionStore::stop()
{
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (sweeper_.joinable()) sweeper_.join();
    std::map<std::string, std::shared_ptr<Session>> closing;
    {
        std::lock_guard lock(mutex_);
        closing.swap(sessions_);
    }
}

}  // namespace envsync::admin
