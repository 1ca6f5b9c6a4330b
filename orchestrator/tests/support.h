#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sys/types.h>

#include "pg.h"

// Real servers for the unit tests: a PostgreSQL database with the envsync extension and an
// aiosmtpd SMTP server, no stand-ins.
namespace envsync::test {

// Runs a program, waits for it; its exit status (-1 when it could not run).
int run_program(const std::vector<std::string>& argv);

// The database named by ENVSYNC_UNIT_DB (a libpq conninfo of a database with CREATE EXTENSION
// envsync; test/run_all.sh makes one on the PROD cluster). The test fails, saying so, when the
// variable is missing or the database is not usable, and envsync.outbox is emptied before each
// test.
class DatabaseTest : public ::testing::Test {
protected:
    void SetUp() override;

    // The first value of the first row as text ("" for NULL or no row), in the test's own session.
    std::string value(const std::string& sql, std::initializer_list<pg::Param> params = {});
    // Queues a mail; returns its id.
    std::int64_t insert_mail(const std::string& kind, const std::string& recipient, const std::string& subject,
                             const std::string& payload = "{}");

    std::string conninfo_;
    std::unique_ptr<pg::Connection> db_;
};

// A fresh directory under /tmp, removed with the object.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// aiosmtpd on a free loopback port with test/e2e/orchestrator/smtp_handler.py's
// RejectingMailbox, storing what it accepts in a maildir of its own. Stopped and removed with
// the object.
class SmtpSink {
public:
    // extra_args: more aiosmtpd options, e.g. {"--tlscert", cert, "--tlskey", key}.
    explicit SmtpSink(std::vector<std::string> extra_args = {});
    ~SmtpSink();
    SmtpSink(const SmtpSink&) = delete;
    SmtpSink& operator=(const SmtpSink&) = delete;

    int port() const { return port_; }
    std::string url(const std::string& scheme = "smtp") const;
    // Each stored message, as the server received it (plus its X-Peer/X-MailFrom/X-RcptTo).
    std::vector<std::string> messages() const;
    std::vector<std::string> message_ids() const;
    void stop();
    void start();

    // Mail to held@...: the server holds its reply to DATA until release(). held() is the
    // Message-ID of the held mail once the server has it, "" before.
    std::string held() const;
    void release() const;

private:
    TempDir dir_;
    std::vector<std::string> extra_args_;
    int port_ = 0;
    pid_t pid_ = -1;
};

// Waits until check() is true, at most `limit`; returns its last result.
template <typename Check>
bool eventually(Check check, std::chrono::milliseconds limit = std::chrono::seconds(10))
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!check()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
}

// A self-signed certificate for 127.0.0.1 and its key, made with openssl in `dir`.
struct Certificate {
    std::string cert;
    std::string key;
};
Certificate make_certificate(const std::filesystem::path& dir);

}  // namespace envsync::test
