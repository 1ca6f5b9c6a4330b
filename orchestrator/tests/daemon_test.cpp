// The daemon (run, StopSignal) against a real database (ENVSYNC_UNIT_DB) and a real SMTP server.
#include <algorithm>
#include <csignal>
#include <future>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "daemon.h"
#include "mime.h"
#include "support.h"

using envsync::Config;
using envsync::StopSignal;
using envsync::test::eventually;
using envsync::test::SmtpSink;
using namespace std::chrono_literals;

namespace {

class Daemon : public envsync::test::DatabaseTest {
protected:
    Config config() const
    {
        Config c;
        c.db = conninfo_;
        c.smtp.url = sink_.url();
        c.smtp.from = "envsync@unit.test";
        c.message_id_domain = "unit.test";
        c.retry = {3, 1s, 2s};
        c.poll_interval = 3600s;  // so a delivery within seconds came from LISTEN/NOTIFY
        return c;
    }

    Config once() const
    {
        Config c = config();
        c.once = true;
        return c;
    }

    std::string state(std::int64_t id)
    {
        return value("SELECT status || '|' || attempts FROM envsync.outbox WHERE id = $1", {std::to_string(id)});
    }

    std::string message_id(std::int64_t id)
    {
        return envsync::mime::message_id(
            id,
            std::stoll(value("SELECT floor(extract(epoch FROM created_at))::bigint FROM envsync.outbox WHERE id = $1",
                             {std::to_string(id)})),
            "unit.test");
    }

    // The pid of the daemon's session once it waits for mail, "" while there is none.
    std::string waiting_session()
    {
        return value("SELECT pid FROM pg_stat_activity"
                     " WHERE application_name = 'envsync-orchestrator' AND pid <> pg_backend_pid()"
                     "   AND datname = current_database() AND state = 'idle'"
                     "   AND query LIKE '%min(next_attempt_at)%'");
    }

    SmtpSink sink_;
};

// run() in a thread of its own, as main() runs it; stop() is SIGTERM.
class Running {
public:
    explicit Running(const Config& config)
        : result_(std::async(std::launch::async, [this, config] { return envsync::run(config, stop_); }))
    {
    }
    ~Running()
    {
        if (result_.valid()) {
            std::raise(SIGTERM);
            result_.wait();
        }
    }
    bool finished() const { return result_.wait_for(0s) == std::future_status::ready; }
    int stop()
    {
        std::raise(SIGTERM);
        if (result_.wait_for(10s) != std::future_status::ready) throw std::runtime_error("the daemon did not stop");
        return result_.get();
    }

private:
    StopSignal stop_;
    std::future<int> result_;
};

}  // namespace

TEST_F(Daemon, OnceDeliversWhatIsDueAndExitsZero)
{
    const auto a = insert_mail("comparison_finished", "ops@example.test", "A", R"({"comparison_id": 1})");
    const auto b = insert_mail("sync_succeeded", "ops@example.test", "B", R"({"sync_id": 2})");
    const auto c = insert_mail("sync_failed", "ops@example.test", "C", R"({"sync_id": 3, "error": "boom"})");
    const StopSignal stop;
    EXPECT_EQ(envsync::run(once(), stop), 0);
    EXPECT_EQ(state(a) + " " + state(b) + " " + state(c), "sent|1 sent|1 sent|1");
    auto ids = sink_.message_ids();
    std::sort(ids.begin(), ids.end());
    std::vector<std::string> expected{message_id(a), message_id(b), message_id(c)};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(ids, expected) << "one mail per row, with the row's Message-ID";
}

TEST_F(Daemon, OnceRecordsAnUnreachableServerForLater)
{
    const auto id = insert_mail("comparison_finished", "ops@example.test", "Down");
    sink_.stop();
    const StopSignal stop;
    EXPECT_EQ(envsync::run(once(), stop), 0);
    EXPECT_EQ(value("SELECT status || '|' || attempts || '|' || (last_error LIKE '%connect%') || '|'"
                    "       || (next_attempt_at > created_at)"
                    "  FROM envsync.outbox WHERE id = $1",
                    {std::to_string(id)}),
              "pending|1|true|true");
}

TEST_F(Daemon, RefusedRecipientFailsAtOnce)
{
    const auto id = insert_mail("comparison_finished", "nobody@invalid.test", "Refused");
    const StopSignal stop;
    EXPECT_EQ(envsync::run(once(), stop), 0);
    EXPECT_EQ(value("SELECT status || '|' || attempts || '|' || last_error FROM envsync.outbox WHERE id = $1",
                    {std::to_string(id)}),
              "failed|1|RCPT refused: 550 5.1.1 <nobody@invalid.test>: recipient address rejected: no such user");
}

TEST_F(Daemon, InvalidRecipientFailsWithoutTryingTheServer)
{
    const auto id = insert_mail("comparison_finished", "ops@example.test>\r\nBcc: x@example.test", "Injected");
    sink_.stop();  // any attempt to send would be a transient failure, not a failed row
    const StopSignal stop;
    EXPECT_EQ(envsync::run(once(), stop), 0);
    EXPECT_EQ(value("SELECT status || '|' || attempts || '|' || (last_error LIKE 'invalid recipient address: %')"
                    "  FROM envsync.outbox WHERE id = $1",
                    {std::to_string(id)}),
              "failed|1|true");
}

TEST_F(Daemon, GivesUpAfterTheLastAttempt)
{
    const auto id = insert_mail("comparison_finished", "ops@busy.test", "Busy");
    db_->exec("UPDATE envsync.outbox SET attempts = 2 WHERE id = $1", {std::to_string(id)});
    const StopSignal stop;
    EXPECT_EQ(envsync::run(once(), stop), 0);  // --max-attempts 3
    EXPECT_EQ(value("SELECT status || '|' || attempts || '|' || last_error FROM envsync.outbox WHERE id = $1",
                    {std::to_string(id)}),
              "failed|3|RCPT refused: 451 4.2.1 <ops@busy.test>: mailbox busy, try again later");
}

TEST_F(Daemon, OnceWithoutTheDatabaseExitsOne)
{
    Config c = once();
    c.db = "host=127.0.0.1 port=1 connect_timeout=5";
    const StopSignal stop;
    EXPECT_EQ(envsync::run(c, stop), 1);
}

TEST_F(Daemon, DeliversOnNotificationAndStopsOnSigterm)
{
    Running daemon(config());
    ASSERT_TRUE(eventually([&] { return !waiting_session().empty(); })) << "the daemon never waited for mail";
    const auto id = insert_mail("comparison_finished", "ops@example.test", "Notified");
    EXPECT_TRUE(eventually([&] { return state(id) == "sent|1"; }, 5s)) << "polling is an hour away";
    EXPECT_EQ(sink_.message_ids(), std::vector<std::string>{message_id(id)});
    EXPECT_EQ(daemon.stop(), 0);
    EXPECT_TRUE(eventually([&] { return waiting_session().empty(); })) << "its session is closed";
}

TEST_F(Daemon, ReconnectsAfterLosingTheDatabase)
{
    Running daemon(config());
    std::string first;
    ASSERT_TRUE(eventually([&] { return !(first = waiting_session()).empty(); }));
    value("SELECT pg_terminate_backend($1)", {first});
    std::string second;
    ASSERT_TRUE(eventually([&] { return !(second = waiting_session()).empty() && second != first; }))
        << "no new session after the first one was terminated";
    EXPECT_FALSE(daemon.finished());
    const auto id = insert_mail("comparison_finished", "ops@example.test", "After reconnect");
    EXPECT_TRUE(eventually([&] { return state(id) == "sent|1"; }, 5s));
    EXPECT_EQ(daemon.stop(), 0);
}

TEST_F(Daemon, SigtermLetsTheMailInFlightFinish)
{
    Running daemon(config());
    const auto id = insert_mail("comparison_finished", "held@example.test", "In flight");
    ASSERT_TRUE(eventually([&] { return sink_.held() == message_id(id); })) << "the mail never reached the server";

    std::raise(SIGTERM);
    // The server holds its reply: the daemon cannot be done, and must not give up on the mail.
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(daemon.finished()) << "stopped with the mail in flight";
    EXPECT_EQ(state(id), "pending|0");

    sink_.release();
    EXPECT_EQ(daemon.stop(), 0);
    EXPECT_EQ(state(id), "sent|1") << "finished and recorded before the exit";
    EXPECT_EQ(sink_.message_ids(), std::vector<std::string>{message_id(id)});
}

TEST(StopSignal, SigtermEndsASleepAndIsRemembered)
{
    const StopSignal stop;
    EXPECT_FALSE(stop.requested());
    auto raiser = std::async(std::launch::async, [] {
        std::this_thread::sleep_for(100ms);
        std::raise(SIGTERM);
    });
    const auto start = std::chrono::steady_clock::now();
    stop.sleep(60s);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
    raiser.wait();
    EXPECT_TRUE(stop.requested());
    stop.sleep(60s);  // returns at once now
}

TEST(StopSignal, OnlyOneAtATimeAndEachStartsUnstopped)
{
    {
        const StopSignal first;
        EXPECT_THROW(StopSignal second, std::logic_error);
        std::raise(SIGINT);
        EXPECT_TRUE(first.requested());
    }
    const StopSignal again;
    EXPECT_FALSE(again.requested());
}
