#include "mime.h"

#include <algorithm>
#include <array>

#include <fmt/core.h>

namespace envsync::mime {

namespace {

// Base64 bodies never contain "=_", so this boundary cannot occur inside a part.
constexpr std::string_view boundary = "=_envsync-alternative";

// "Subject: " plus this many characters stays within the recommended 78-character line.
constexpr std::size_t plain_subject_max = 69;
// 39 bytes become 52 base64 characters: an encoded-word of 64 characters per line.
constexpr std::size_t encoded_word_bytes = 39;

bool is_utf8_continuation(char c)
{
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

std::string encoded_word(std::string_view chunk)
{
    return fmt::format("=?UTF-8?B?{}?=", base64(chunk));
}

std::string base64_lines(std::string_view data)
{
    const std::string encoded = base64(data);
    std::string out;
    for (std::size_t pos = 0; pos < encoded.size(); pos += 76) {
        out += encoded.substr(pos, 76);
        out += "\r\n";
    }
    return out;
}

std::string part(std::string_view content_type, std::string_view body)
{
    return fmt::format("--{}\r\nContent-Type: {}; charset=UTF-8\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n{}",
                       boundary, content_type, base64_lines(body));
}

}  // namespace

std::string html_escape(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

std::string header_text(std::string_view text)
{
    std::string out(text);
    for (char& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    }
    const auto first = out.find_first_not_of(' ');
    if (first == std::string::npos) return {};
    return out.substr(first, out.find_last_not_of(' ') - first + 1);
}

std::string encode_subject(std::string_view subject)
{
    const std::string clean = header_text(subject);
    bool plain = clean.size() <= plain_subject_max && clean.find("=?") == std::string::npos;
    for (char c : clean) {
        plain = plain && static_cast<unsigned char>(c) < 0x80;
    }
    if (plain) return clean;

    std::string out;
    std::string_view rest = clean;
    while (!rest.empty()) {
        std::size_t len = std::min(encoded_word_bytes, rest.size());
        // Never split a multi-byte character between two encoded-words (RFC 2047, 5).
        while (len < rest.size() && len > 0 && is_utf8_continuation(rest[len])) --len;
        if (len == 0) len = std::min(encoded_word_bytes, rest.size());
        if (!out.empty()) out += "\r\n ";
        out += encoded_word(rest.substr(0, len));
        rest.remove_prefix(len);
    }
    return out;
}

bool plain_domain(std::string_view domain)
{
    if (domain.empty() || domain.front() == '.' || domain.back() == '.') return false;
    for (char c : domain) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                        || c == '.' || c == '-';
        if (!ok) return false;
    }
    return true;
}

std::optional<std::string> address_problem(std::string_view address)
{
    if (address.empty()) return "the address is empty";
    for (char c : address) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) return "the address contains control characters (CR/LF)";
        if (u >= 0x80) return "the address contains non-ASCII characters";
        if (std::string_view(" <>()[],;:\"\\").find(c) != std::string_view::npos)
            return fmt::format("the address contains '{}'", c);
    }
    const auto at = address.rfind('@');
    if (at == std::string_view::npos || address.find('@') != at)
        return "the address needs exactly one '@'";
    if (at == 0) return "the address has no local part";
    if (!plain_domain(address.substr(at + 1))) return "the address has no valid domain";
    return std::nullopt;
}

std::string base64(std::string_view data)
{
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < data.size(); i += 3) {
        const unsigned n = static_cast<unsigned char>(data[i]) << 16
                           | static_cast<unsigned char>(data[i + 1]) << 8
                           | static_cast<unsigned char>(data[i + 2]);
        out += alphabet[n >> 18 & 63];
        out += alphabet[n >> 12 & 63];
        out += alphabet[n >> 6 & 63];
        out += alphabet[n & 63];
    }
    const std::size_t left = data.size() - i;
    if (left > 0) {
        unsigned n = static_cast<unsigned char>(data[i]) << 16;
        if (left == 2) n |= static_cast<unsigned char>(data[i + 1]) << 8;
        out += alphabet[n >> 18 & 63];
        out += alphabet[n >> 12 & 63];
        out += left == 2 ? alphabet[n >> 6 & 63] : '=';
        out += '=';
    }
    return out;
}

std::string date_header(std::time_t when)
{
    // Fixed English names: strftime's %a/%b would follow the process locale.
    static constexpr std::array<const char*, 7> days{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr std::array<const char*, 12> months{
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm utc{};
    gmtime_r(&when, &utc);
    return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", days[utc.tm_wday], utc.tm_mday,
                       months[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
}

std::string message_id(std::int64_t outbox_id, std::int64_t created_epoch, std::string_view domain)
{
    return fmt::format("<envsync-outbox-{}.{}@{}>", outbox_id, created_epoch, domain);
}

std::string compose(const Message& message)
{
    std::string out = fmt::format(
        "Date: {}\r\n"
        "From: envsync <{}>\r\n"
        "To: {}\r\n"
        "Subject: {}\r\n"
        "Message-ID: {}\r\n"
        "MIME-Version: 1.0\r\n"
        "Auto-Submitted: auto-generated\r\n"
        "Content-Type: multipart/alternative; boundary=\"{}\"\r\n"
        "\r\n",
        header_text(message.date), header_text(message.from), header_text(message.to),
        encode_subject(message.subject), header_text(message.message_id), boundary);
    out += part("text/plain", message.text);
    out += part("text/html", message.html);
    out += fmt::format("--{}--\r\n", boundary);
    return out;
}

}  // namespace envsync::mime
