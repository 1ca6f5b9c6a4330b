#include <cstdio>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "config.h"

using envsync::CommandLine;
using envsync::ConfigError;
using envsync::parse_command_line;
using envsync::redact_url;

namespace {

using Env = std::map<std::string, std::string>;

CommandLine parse(std::vector<std::string> args, Env env = {})
{
    return parse_command_line(args, [env](const std::string& name) -> std::optional<std::string> {
        const auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
    });
}

const std::vector<std::string> minimal{"--smtp-url", "smtp://mail.example.com:25", "--from",
                                       "envsync@example.com"};

std::vector<std::string> with(std::vector<std::string> extra)
{
    extra.insert(extra.begin(), minimal.begin(), minimal.end());
    return extra;
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

TEST(Config, DefaultsFromTheIssue)
{
    const auto c = parse(minimal).config;
    EXPECT_EQ(c.poll_interval, std::chrono::seconds(30));
    EXPECT_EQ(c.retry.max_attempts, 8);
    EXPECT_EQ(c.retry.base, std::chrono::seconds(30));
    EXPECT_FALSE(c.once);
    EXPECT_FALSE(c.smtp.starttls);
    EXPECT_EQ(c.db, "");
    EXPECT_EQ(c.message_id_domain, "example.com");
}

TEST(Config, FlagsWinOverEnvironment)
{
    const Env env{{"ENVSYNC_DB_URL", "dbname=fromenv"},
                  {"ENVSYNC_SMTP_URL", "smtp://env.example.com"},
                  {"ENVSYNC_MAIL_FROM", "env@example.com"}};
    const auto from_env = parse({}, env).config;
    EXPECT_EQ(from_env.db, "dbname=fromenv");
    EXPECT_EQ(from_env.smtp.url, "smtp://env.example.com");
    EXPECT_EQ(from_env.smtp.from, "env@example.com");

    const auto c = parse(with({"--db=dbname=shop", "--once", "--poll-interval", "2", "--max-attempts=3",
                               "--backoff-base", "1", "--backoff-max", "4", "--smtp-starttls",
                               "--message-id-domain", "mail.example.org"}),
                         env)
                       .config;
    EXPECT_EQ(c.db, "dbname=shop");
    EXPECT_EQ(c.smtp.url, "smtp://mail.example.com:25");
    EXPECT_EQ(c.smtp.from, "envsync@example.com");
    EXPECT_TRUE(c.once);
    EXPECT_TRUE(c.smtp.starttls);
    EXPECT_EQ(c.poll_interval, std::chrono::seconds(2));
    EXPECT_EQ(c.retry.max_attempts, 3);
    EXPECT_EQ(c.retry.cap, std::chrono::seconds(4));
    EXPECT_EQ(c.message_id_domain, "mail.example.org");
}

TEST(Config, PasswordFlagIsRefusedWithoutEchoingIt)
{
    for (const auto& args : {with({"--smtp-password", "secret"}), with({"--smtp-password=secret"}),
                             with({"--password", "secret"}), with({"--db-password=secret"})}) {
        const std::string message = refusal(args);
        EXPECT_NE(message.find("refusing"), std::string::npos) << message;
        EXPECT_EQ(message.find("secret"), std::string::npos) << message;
    }
}

TEST(Config, PasswordInsideDbOrUrlFlagIsRefused)
{
    EXPECT_NE(refusal(with({"--db", "host=db user=mailer password=secret"})).find("refusing"), std::string::npos);
    EXPECT_NE(refusal(with({"--db", "postgresql://mailer:secret@db/shop"})).find("refusing"), std::string::npos);
    EXPECT_NE(refusal({"--smtp-url", "smtp://user:secret@mail.example.com", "--from", "a@example.com"})
                  .find("refusing"),
              std::string::npos);
    // A user name alone is no secret; passwords in the environment are how it is meant to be done.
    EXPECT_NO_THROW(parse({"--smtp-url", "smtps://user@mail.example.com", "--from", "a@example.com"}));
    EXPECT_EQ(parse(minimal, {{"ENVSYNC_DB_URL", "postgresql://mailer:secret@db/shop"}}).config.db,
              "postgresql://mailer:secret@db/shop");
}

TEST(Config, CredentialsFromEnvironmentOrFile)
{
    const auto c = parse(with({"--smtp-starttls"}), {{"ENVSYNC_SMTP_USER", "mailer"}, {"ENVSYNC_SMTP_PASSWORD", "pw"}})
                       .config;
    EXPECT_EQ(c.smtp.user, "mailer");
    EXPECT_EQ(c.smtp.password, "pw");

    const std::string path = ::testing::TempDir() + "envsync-smtp-password";
    std::ofstream(path) << "from file\n";
    const auto f = parse(with({"--smtp-starttls", "--smtp-password-file", path}), {{"ENVSYNC_SMTP_USER", "mailer"}})
                       .config;
    EXPECT_EQ(f.smtp.password, "from file");
    EXPECT_THROW(parse(with({"--smtp-starttls", "--smtp-password-file", path}),
                       {{"ENVSYNC_SMTP_USER", "mailer"}, {"ENVSYNC_SMTP_PASSWORD", "pw"}}),
                 ConfigError);
    EXPECT_THROW(parse(with({"--smtp-starttls", "--smtp-password-file", path})), ConfigError)
        << "password without user";
    std::remove(path.c_str());
    EXPECT_THROW(parse(with({"--smtp-starttls", "--smtp-password-file", path}), {{"ENVSYNC_SMTP_USER", "mailer"}}),
                 ConfigError);
}

TEST(Config, CredentialsWithoutTlsAreRefusedUnlessAllowed)
{
    const Env credentials{{"ENVSYNC_SMTP_USER", "mailer"}, {"ENVSYNC_SMTP_PASSWORD", "secret"}};
    // smtp:// without STARTTLS would send AUTH in clear.
    const std::string message = refusal(minimal, credentials);
    EXPECT_EQ(message, "refusing to send SMTP credentials without TLS: use smtps://, --smtp-starttls, or "
                       "--smtp-allow-plaintext-auth if the connection to the relay is protected otherwise");
    EXPECT_EQ(refusal({"--smtp-url", "smtp://mailer@mail.example.com", "--from", "a@example.com"}, {}), message)
        << "a user name in the URL makes libcurl authenticate too";
    EXPECT_EQ(refusal(minimal, {{"ENVSYNC_SMTP_URL", "smtp://mailer:secret@mail.example.com"}}), "accepted")
        << "--smtp-url wins; the environment's URL is not used";
    EXPECT_EQ(refusal({"--from", "a@example.com"}, {{"ENVSYNC_SMTP_URL", "smtp://mailer:secret@mail.example.com"}}),
              message);

    // TLS, or the flag that says exactly this, makes it acceptable.
    EXPECT_EQ(refusal(with({"--smtp-starttls"}), credentials), "accepted");
    EXPECT_EQ(refusal({"--smtp-url", "smtps://mail.example.com", "--from", "a@example.com"}, credentials), "accepted");
    const auto allowed = parse(with({"--smtp-allow-plaintext-auth"}), credentials).config;
    EXPECT_TRUE(allowed.smtp.allow_plaintext_auth);
    EXPECT_EQ(allowed.smtp.password, "secret");
    EXPECT_EQ(refusal(with({"--smtp-allow-plaintext-auth=yes"}), credentials),
              "--smtp-allow-plaintext-auth takes no value");

    // Without credentials there is nothing to protect: plain smtp:// stays allowed.
    EXPECT_EQ(refusal(minimal, {}), "accepted");
    EXPECT_FALSE(parse(minimal).config.smtp.allow_plaintext_auth);
}

TEST(Config, RejectsBadValues)
{
    EXPECT_THROW(parse({"--from", "a@example.com"}), ConfigError) << "no SMTP URL";
    EXPECT_THROW(parse({"--smtp-url", "http://example.com", "--from", "a@example.com"}), ConfigError);
    EXPECT_THROW(parse({"--smtp-url", "smtp://example.com"}), ConfigError) << "no sender";
    EXPECT_THROW(parse({"--smtp-url", "smtp://example.com", "--from", "a@example.com\r\nBcc: x@y"}), ConfigError);
    EXPECT_THROW(parse(with({"--poll-interval", "0"})), ConfigError);
    EXPECT_THROW(parse(with({"--poll-interval", "5s"})), ConfigError);
    EXPECT_THROW(parse(with({"--max-attempts"})), ConfigError) << "missing value";
    EXPECT_THROW(parse(with({"--backoff-base", "60", "--backoff-max", "30"})), ConfigError);
    EXPECT_THROW(parse(with({"--once=yes"})), ConfigError);
    EXPECT_THROW(parse(with({"--message-id-domain", "bad domain>"})), ConfigError);
    EXPECT_THROW(parse(with({"--verbose"})), ConfigError);
}

TEST(Config, HelpNeedsNoOtherSettings)
{
    EXPECT_TRUE(parse({"--help"}).help);
    EXPECT_TRUE(parse({"-h"}).help);
    EXPECT_NE(envsync::usage().find("--smtp-password-file"), std::string::npos);
    EXPECT_NE(envsync::usage().find("--smtp-allow-plaintext-auth"), std::string::npos);
}

TEST(Config, RedactUrlStripsUserinfo)
{
    EXPECT_EQ(redact_url("smtp://user:secret@mail.example.com:587/helo"), "smtp://mail.example.com:587/helo");
    EXPECT_EQ(redact_url("smtps://user%40corp:p%40ss@mail.example.com"), "smtps://mail.example.com");
    EXPECT_EQ(redact_url("smtp://user@mail.example.com"), "smtp://mail.example.com");
    EXPECT_EQ(redact_url("smtp://mail.example.com:25"), "smtp://mail.example.com:25");
    // An @ after the authority is not userinfo.
    EXPECT_EQ(redact_url("smtp://mail.example.com/a@b"), "smtp://mail.example.com/a@b");
}
