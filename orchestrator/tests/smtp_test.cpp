// smtp::send against a real SMTP server (aiosmtpd), plain, with STARTTLS and over SMTPS.
#include <algorithm>

#include <gtest/gtest.h>

#include "smtp.h"
#include "support.h"

using envsync::SendResult;
using envsync::SmtpSettings;
using envsync::test::SmtpSink;
namespace smtp = envsync::smtp;

namespace {

// A body line starting with a dot must survive SMTP's end-of-data convention.
const std::string body = "First line\r\n.a line that starts with a dot\r\n.\r\nLast line\r\n";

std::string message(const std::string& to, const std::string& id)
{
    return "From: envsync <envsync@unit.test>\r\nTo: " + to + "\r\nSubject: Unit test\r\nMessage-ID: <" + id
           + "@unit.test>\r\n\r\n" + body;
}

SmtpSettings plain(const SmtpSink& sink)
{
    SmtpSettings s;
    s.url = sink.url();
    s.from = "envsync@unit.test";
    return s;
}

std::string without_cr(std::string text)
{
    text.erase(std::remove(text.begin(), text.end(), '\r'), text.end());
    return text;
}

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

const char* status_name(SendResult::Status s)
{
    switch (s) {
    case SendResult::Status::Sent: return "sent";
    case SendResult::Status::Transient: return "transient";
    case SendResult::Status::Permanent: return "permanent";
    }
    return "?";
}

}  // namespace

TEST(Smtp, DeliversTheMessageAsGivenWithItsEnvelope)
{
    SmtpSink sink;
    const auto result = smtp::send(plain(sink), "ops@example.test", message("ops@example.test", "m1"));
    EXPECT_STREQ(status_name(result.status), "sent") << result.error;
    EXPECT_EQ(result.error, "");

    const auto stored = sink.messages();
    ASSERT_EQ(stored.size(), 1u);
    const std::string text = without_cr(stored[0]);
    EXPECT_TRUE(contains(text, "\nX-MailFrom: envsync@unit.test\n")) << text;
    EXPECT_TRUE(contains(text, "\nX-RcptTo: ops@example.test\n")) << text;
    EXPECT_TRUE(contains(text, "\nMessage-ID: <m1@unit.test>\n")) << text;
    EXPECT_TRUE(contains(text, "\n\n" + without_cr(body))) << "the body, leading dots included: " << text;
}

TEST(Smtp, UnknownRecipientIsPermanentWithTheServersWords)
{
    SmtpSink sink;
    const auto result = smtp::send(plain(sink), "nobody@invalid.test", message("nobody@invalid.test", "m2"));
    EXPECT_STREQ(status_name(result.status), "permanent");
    EXPECT_EQ(result.error, "RCPT refused: 550 5.1.1 <nobody@invalid.test>: recipient address rejected: no such user");
    EXPECT_TRUE(sink.messages().empty());
}

TEST(Smtp, TemporaryRefusalIsTransient)
{
    SmtpSink sink;
    const auto result = smtp::send(plain(sink), "ops@busy.test", message("ops@busy.test", "m3"));
    EXPECT_STREQ(status_name(result.status), "transient");
    EXPECT_EQ(result.error, "RCPT refused: 451 4.2.1 <ops@busy.test>: mailbox busy, try again later");
    EXPECT_TRUE(sink.messages().empty());
}

TEST(Smtp, MessageRefusedAfterDataIsPermanent)
{
    SmtpSink sink;
    const auto result = smtp::send(plain(sink), "refuse-data@example.test", message("refuse-data@example.test", "m4"));
    EXPECT_STREQ(status_name(result.status), "permanent");
    EXPECT_EQ(result.error, "DATA refused: 554 5.6.0 message refused by content filter");
    EXPECT_TRUE(sink.messages().empty());
}

TEST(Smtp, ServerDownIsTransient)
{
    SmtpSink sink;
    sink.stop();
    const auto result = smtp::send(plain(sink), "ops@example.test", message("ops@example.test", "m5"));
    EXPECT_STREQ(status_name(result.status), "transient");
    EXPECT_TRUE(contains(result.error, "onnect")) << result.error;  // "Failed to connect ..."
}

TEST(Smtp, RequiredStarttlsIsNeverSkipped)
{
    SmtpSink sink;  // offers no STARTTLS
    auto settings = plain(sink);
    settings.starttls = true;
    const auto result = smtp::send(settings, "ops@example.test", message("ops@example.test", "m6"));
    EXPECT_STREQ(status_name(result.status), "transient");
    EXPECT_FALSE(result.error.empty());
    EXPECT_TRUE(sink.messages().empty()) << "nothing may go out in clear";
}

TEST(Smtp, StarttlsWithThePrivateCaOfTheRelay)
{
    const envsync::test::TempDir ca_dir;
    const auto certificate = envsync::test::make_certificate(ca_dir.path());
    SmtpSink sink({"--tlscert", certificate.cert, "--tlskey", certificate.key});
    auto settings = plain(sink);
    settings.starttls = true;

    // The system store does not know the relay's CA: the certificate is checked, not waved through.
    const auto untrusted = smtp::send(settings, "ops@example.test", message("ops@example.test", "m7"));
    EXPECT_STREQ(status_name(untrusted.status), "transient");
    EXPECT_TRUE(contains(untrusted.error, "certificate")) << untrusted.error;
    EXPECT_TRUE(sink.messages().empty());

    settings.ca_file = certificate.cert;
    const auto trusted = smtp::send(settings, "ops@example.test", message("ops@example.test", "m8"));
    EXPECT_STREQ(status_name(trusted.status), "sent") << trusted.error;
    EXPECT_EQ(sink.message_ids(), std::vector<std::string>{"<m8@unit.test>"});
}

TEST(Smtp, SmtpsWithThePrivateCaOfTheRelay)
{
    const envsync::test::TempDir ca_dir;
    const auto certificate = envsync::test::make_certificate(ca_dir.path());
    SmtpSink sink({"--smtpscert", certificate.cert, "--smtpskey", certificate.key});
    auto settings = plain(sink);
    settings.url = sink.url("smtps");
    settings.ca_file = certificate.cert;
    const auto result = smtp::send(settings, "ops@example.test", message("ops@example.test", "m9"));
    EXPECT_STREQ(status_name(result.status), "sent") << result.error;
    EXPECT_EQ(sink.message_ids(), std::vector<std::string>{"<m9@unit.test>"});
}
