#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

// Building blocks of an RFC 5322 / MIME message. Every header value that may come from data
// passes through here, so escaping and injection rules live in one place.
namespace envsync::mime {

std::string html_escape(std::string_view text);

// Replaces CR, LF and other control characters by spaces and trims: the result can never
// end a header line or start a new one.
std::string header_text(std::string_view text);

// A Subject value: plain when short printable ASCII, otherwise RFC 2047 UTF-8 encoded-words
// (whole characters per word), folded onto continuation lines.
std::string encode_subject(std::string_view subject);

// Why an address is not a plain ASCII addr-spec (local@domain) we are willing to put into a
// header and an SMTP command, or nullopt when it is fine.
std::optional<std::string> address_problem(std::string_view address);

// Whether a domain is made of letters, digits, dots and hyphens only.
bool plain_domain(std::string_view domain);

std::string base64(std::string_view data);

// RFC 5322 date in UTC, e.g. "Tue, 24 Nov 2026 17:00:00 +0000".
std::string date_header(std::time_t when);

// Derived from the outbox row only, so a resent mail carries the same Message-ID and
// receivers can recognise the duplicate.
std::string message_id(std::int64_t outbox_id, std::int64_t created_epoch, std::string_view domain);

struct Message {
    std::string from;
    std::string to;
    std::string subject;
    std::string date;
    std::string message_id;
    std::string text;
    std::string html;
};

// multipart/alternative with a text/plain and a text/html part, CRLF line ends, 7-bit clean.
std::string compose(const Message& message);

}  // namespace envsync::mime
