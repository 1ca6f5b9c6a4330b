#include <algorithm>
#include <sstream>

#include <gtest/gtest.h>

#include "mime.h"

using namespace envsync::mime;

namespace {

std::string base64_decode(std::string_view text)
{
    static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned bits = 0;
    int count = 0;
    for (char c : text) {
        const auto pos = alphabet.find(c);
        if (pos == std::string::npos) continue;  // padding, line breaks
        bits = bits << 6 | static_cast<unsigned>(pos);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out += static_cast<char>(bits >> count & 0xFF);
        }
    }
    return out;
}

bool valid_utf8(std::string_view s)
{
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

// Decodes a folded Subject value made of =?UTF-8?B?...?= words, checking each word on its own.
std::string decode_subject(const std::string& value)
{
    std::string out;
    std::istringstream words(value);
    std::string word;
    while (words >> word) {
        EXPECT_EQ(word.rfind("=?UTF-8?B?", 0), 0u) << word;
        EXPECT_EQ(word.substr(word.size() - 2), "?=") << word;
        const std::string decoded = base64_decode(word.substr(10, word.size() - 12));
        EXPECT_TRUE(valid_utf8(decoded)) << "a character was split: " << word;
        out += decoded;
    }
    return out;
}

std::vector<std::string> lines(const std::string& text)
{
    std::vector<std::string> out;
    for (std::size_t pos = 0; pos < text.size();) {
        const auto end = text.find("\r\n", pos);
        EXPECT_NE(end, std::string::npos) << "message must end with CRLF";
        out.push_back(text.substr(pos, end - pos));
        pos = end + 2;
    }
    return out;
}

Message sample()
{
    return {"envsync@example.com", "ops@example.com", "Sync finished", "Tue, 24 Nov 2026 17:00:00 +0000",
            "<envsync-outbox-7.1795539200@example.com>", "plain text ✓\n", "<p>html ✓</p>\n"};
}

}  // namespace

TEST(Mime, HtmlEscapesHostileValues)
{
    EXPECT_EQ(html_escape("<script>alert(\"x\")</script>"), "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    EXPECT_EQ(html_escape("Tom & 'Jerry'"), "Tom &amp; &#39;Jerry&#39;");
    EXPECT_EQ(html_escape("&amp;"), "&amp;amp;") << "already-escaped text is escaped again";
    EXPECT_EQ(html_escape("Größe"), "Größe");
}

TEST(Mime, HeaderTextNeutralisesLineBreaks)
{
    EXPECT_EQ(header_text("Done\r\nBcc: evil@example.com"), "Done  Bcc: evil@example.com");
    EXPECT_EQ(header_text("\nline\r"), "line");
    EXPECT_EQ(header_text("tab\there\x7f"), "tab here");
}

TEST(Mime, ShortAsciiSubjectStaysPlain)
{
    EXPECT_EQ(encode_subject("Comparison #12 finished"), "Comparison #12 finished");
}

TEST(Mime, SubjectWithCrLfCannotInjectHeaders)
{
    const std::string value = encode_subject("Hi\r\nBcc: evil@example.com\r\n\r\nbody");
    EXPECT_EQ(value.find('\n'), std::string::npos);
    EXPECT_EQ(value, "Hi  Bcc: evil@example.com    body");
}

TEST(Mime, NonAsciiSubjectIsRfc2047Encoded)
{
    EXPECT_EQ(encode_subject("Grüße"), "=?UTF-8?B?R3LDvMOfZQ==?=");
    const std::string subject = "Synchronisation réussie: test → prod — 3 modules, ✓ Größenänderung übernommen";
    const std::string value = encode_subject(subject);
    for (const auto& line : lines(value + "\r\n")) EXPECT_LE(line.size() + 9, 78u) << line;
    EXPECT_EQ(decode_subject(value), subject);
}

TEST(Mime, EncodedWordMarkerAndLongAsciiAreEncoded)
{
    EXPECT_EQ(decode_subject(encode_subject("=?UTF-8?B?Zm9v?=")), "=?UTF-8?B?Zm9v?=");
    const std::string long_subject(120, 'x');
    EXPECT_EQ(decode_subject(encode_subject(long_subject)), long_subject);
}

TEST(Mime, AddressProblems)
{
    EXPECT_EQ(address_problem("ops@example.com"), std::nullopt);
    EXPECT_EQ(address_problem("first.last+tag@mail.example-shop.de"), std::nullopt);
    EXPECT_NE(address_problem("ops@example.com\r\nBcc: evil@example.com"), std::nullopt);
    EXPECT_NE(address_problem("ops@example.com\n"), std::nullopt);
    EXPECT_NE(address_problem("Ops <ops@example.com>"), std::nullopt);
    EXPECT_NE(address_problem("a@b@example.com"), std::nullopt);
    EXPECT_NE(address_problem("ops"), std::nullopt);
    EXPECT_NE(address_problem("@example.com"), std::nullopt);
    EXPECT_NE(address_problem("ops@"), std::nullopt);
    EXPECT_NE(address_problem("jörg@example.com"), std::nullopt);
    EXPECT_NE(address_problem(""), std::nullopt);
}

TEST(Mime, Base64KnownVectors)
{
    EXPECT_EQ(base64(""), "");
    EXPECT_EQ(base64("f"), "Zg==");
    EXPECT_EQ(base64("fo"), "Zm8=");
    EXPECT_EQ(base64("foo"), "Zm9v");
    EXPECT_EQ(base64("foob"), "Zm9vYg==");
    EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
    EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64("\xff\xfe"), "//4=");
}

TEST(Mime, DateHeaderIsRfc5322Utc)
{
    EXPECT_EQ(date_header(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    EXPECT_EQ(date_header(1795539600), "Tue, 24 Nov 2026 17:00:00 +0000");
}

TEST(Mime, MessageIdIsStablePerRow)
{
    EXPECT_EQ(message_id(42, 1795539600, "example.com"), "<envsync-outbox-42.1795539600@example.com>");
    EXPECT_EQ(message_id(42, 1795539600, "example.com"), message_id(42, 1795539600, "example.com"));
    EXPECT_NE(message_id(42, 1795539600, "example.com"), message_id(43, 1795539600, "example.com"));
}

TEST(Mime, ComposeBuildsMultipartAlternative)
{
    const std::string raw = compose(sample());
    const auto all = lines(raw);
    for (auto pos = raw.find('\n'); pos != std::string::npos; pos = raw.find('\n', pos + 1))
        ASSERT_TRUE(pos > 0 && raw[pos - 1] == '\r') << "bare LF at " << pos;
    for (const auto& line : all) EXPECT_LE(line.size(), 78u) << line;

    const auto blank = std::find(all.begin(), all.end(), "");
    ASSERT_NE(blank, all.end());
    const std::vector<std::string> headers(all.begin(), blank);
    const std::vector<std::string> expected{"Date: Tue, 24 Nov 2026 17:00:00 +0000",
                                            "From: envsync <envsync@example.com>",
                                            "To: ops@example.com",
                                            "Subject: Sync finished",
                                            "Message-ID: <envsync-outbox-7.1795539200@example.com>",
                                            "MIME-Version: 1.0",
                                            "Auto-Submitted: auto-generated",
                                            "Content-Type: multipart/alternative; boundary=\"=_envsync-alternative\""};
    EXPECT_EQ(headers, expected);

    const std::vector<std::string> body(blank + 1, all.end());
    EXPECT_EQ(std::count(body.begin(), body.end(), "--=_envsync-alternative"), 2);
    EXPECT_EQ(body.back(), "--=_envsync-alternative--");
    const auto plain = raw.find("Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    const auto html = raw.find("Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    ASSERT_NE(plain, std::string::npos);
    ASSERT_NE(html, std::string::npos);
    EXPECT_LT(plain, html) << "the preferred (HTML) alternative comes last";
    const auto text_start = raw.find("\r\n\r\n", plain) + 4;
    EXPECT_EQ(base64_decode(raw.substr(text_start, raw.find("--=_", text_start) - text_start)), "plain text ✓\n");
    const auto html_start = raw.find("\r\n\r\n", html) + 4;
    EXPECT_EQ(base64_decode(raw.substr(html_start, raw.find("--=_", html_start) - html_start)), "<p>html ✓</p>\n");
}

TEST(Mime, ComposeNeutralisesInjectedHeaders)
{
    Message m = sample();
    m.to = "ops@example.com\r\nBcc: evil@example.com";
    m.subject = "Done\r\nX-Injected: 1";
    m.message_id = "<id@example.com>\r\nX-Injected: 2";
    for (const auto& line : lines(compose(m))) {
        EXPECT_NE(line.rfind("Bcc:", 0), 0u) << line;
        EXPECT_NE(line.rfind("X-Injected:", 0), 0u) << line;
    }
}
