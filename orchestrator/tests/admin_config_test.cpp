#include <map>

#include <gtest/gtest.h>

#include "admin_config.h"

using envsync::ConfigError;
using envsync::admin::CommandLine;
using envsync::admin::loopback;

namespace {

using Env = std::map<std::string, std::string>;

CommandLine parse(const std::vector<std::string>& args, const Env& env = {})
{
    return envsync::admin::parse_command_line(args, [env](const std::string& name) -> std::optional<std::string> {
        const auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
    });
}

// Why the arguments were refused, or "accepted".
std::string refusal(const std::vector<std::string>& args, const Env& env = {})
{
    try {
        parse(args, env);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "accepted";
}

}  // namespace

TEST(AdminConfig, DefaultsListenOnLoopbackWithoutTls)
{
    const auto c = parse({}).config;
    EXPECT_EQ(c.listen, "127.0.0.1");
    EXPECT_EQ(c.port, 8080);
    EXPECT_FALSE(c.tls());
    EXPECT_EQ(c.session_idle, std::chrono::minutes(30));
    EXPECT_EQ(c.session_lifetime, std::chrono::hours(12));
    EXPECT_EQ(c.db, "");
}

TEST(AdminConfig, FlagsWinOverTheEnvironment)
{
    const Env env{{"ENVSYNC_DB_URL", "host=env.example dbname=shop"}};
    EXPECT_EQ(parse({}, env).config.db, "host=env.example dbname=shop");
    const auto c = parse({"--db=host=flag.example dbname=shop", "--port", "0", "--session-timeout", "60",
                          "--session-lifetime=120", "--max-sessions", "3"},
                         env)
                       .config;
    EXPECT_EQ(c.db, "host=flag.example dbname=shop");
    EXPECT_EQ(c.port, 0);
    EXPECT_EQ(c.session_idle, std::chrono::seconds(60));
    EXPECT_EQ(c.session_lifetime, std::chrono::seconds(120));
    EXPECT_EQ(c.max_sessions, 3);
}

TEST(AdminConfig, NoPasswordAnywhere)
{
    EXPECT_EQ(refusal({"--db", "host=db dbname=shop password=secret"}),
              "refusing a password in the database connection string: each user logs in with their own");
    EXPECT_EQ(refusal({}, {{"ENVSYNC_DB_URL", "postgresql://admin:secret@db/shop"}}),
              "refusing a password in the database connection string: each user logs in with their own");
    EXPECT_NE(refusal({"--db-password=secret"}).find("refusing --db-password"), std::string::npos);
    EXPECT_EQ(refusal({"--db", "host=db dbname=shop user=anyone"}), "accepted");
}

TEST(AdminConfig, OtherAddressesNeedTls)
{
    EXPECT_NE(refusal({"--listen", "0.0.0.0"}).find("refusing to listen on 0.0.0.0 without TLS"), std::string::npos);
    EXPECT_NE(refusal({"--listen", "192.0.2.10"}).find("without TLS"), std::string::npos);
    EXPECT_EQ(refusal({"--listen", "::1"}), "accepted");
    EXPECT_EQ(refusal({"--listen", "127.0.0.2"}), "accepted");
    EXPECT_EQ(refusal({"--listen", "0.0.0.0", "--tls-cert", "c.pem", "--tls-key", "k.pem"}), "accepted");
    EXPECT_EQ(refusal({"--tls-cert", "c.pem"}), "TLS needs both --tls-cert and --tls-key");
    EXPECT_EQ(refusal({"--tls-key", "k.pem"}), "TLS needs both --tls-cert and --tls-key");
}

TEST(AdminConfig, BadValuesAreRefused)
{
    EXPECT_EQ(refusal({"--port", "70000"}), "--port needs a whole number from 0 to 65535, not '70000'");
    EXPECT_EQ(refusal({"--session-timeout", "0"}), "--session-timeout needs a whole number from 1 to 604800, not '0'");
    EXPECT_EQ(refusal({"--session-timeout", "600", "--session-lifetime", "60"}),
              "--session-lifetime must not be less than --session-timeout");
    EXPECT_EQ(refusal({"--port"}), "--port needs a value");
    EXPECT_EQ(refusal({"--help=yes"}), "--help takes no value");
    EXPECT_EQ(refusal({"--smtp-url", "smtp://x"}), "unknown option '--smtp-url' (see --help)");
}

TEST(AdminConfig, Loopback)
{
    EXPECT_TRUE(loopback("127.0.0.1"));
    EXPECT_TRUE(loopback("127.8.9.10"));
    EXPECT_TRUE(loopback("::1"));
    EXPECT_TRUE(loopback("localhost"));
    EXPECT_FALSE(loopback("0.0.0.0"));
    EXPECT_FALSE(loopback("::"));
    EXPECT_FALSE(loopback("10.0.0.1"));
    EXPECT_FALSE(loopback("localhost.example.com"));
}
