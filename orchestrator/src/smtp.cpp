#include "smtp.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>

#include <curl/curl.h>
#include <fmt/core.h>

namespace envsync::smtp {

namespace {

struct Upload {
    std::string_view rest;
};

std::size_t read_message(char* buffer, std::size_t size, std::size_t count, void* userdata)
{
    auto* upload = static_cast<Upload*>(userdata);
    const std::size_t n = std::min(size * count, upload->rest.size());
    std::memcpy(buffer, upload->rest.data(), n);
    upload->rest.remove_prefix(n);
    return n;
}

// Follows the dialogue to tell which command the server refused and with what words.
// Outgoing lines are reduced to a known command verb: AUTH lines and their continuation
// lines carry credentials and must never reach an error message.
struct Dialogue {
    std::string last_command;
    std::string rejected_command;
    std::string rejection;  // the server's reply line, e.g. "550 5.1.1 unknown user"
};

int trace(CURL*, curl_infotype type, char* data, std::size_t size, void* userdata)
{
    auto* dialogue = static_cast<Dialogue*>(userdata);
    std::string_view text(data, size);
    if (type == CURLINFO_HEADER_OUT) {
        static constexpr std::array<std::string_view, 9> verbs{"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL",
                                                               "RCPT", "DATA", "RSET", "QUIT"};
        const auto verb = text.substr(0, text.find_first_of(" \r\n"));
        if (std::find(verbs.begin(), verbs.end(), verb) != verbs.end()) dialogue->last_command = verb;
    } else if (type == CURLINFO_HEADER_IN) {
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
        const auto line_start = text.rfind('\n');
        std::string_view line = line_start == std::string_view::npos ? text : text.substr(line_start + 1);
        if (!line.empty() && (line[0] == '4' || line[0] == '5')) {
            dialogue->rejected_command = dialogue->last_command;
            dialogue->rejection = std::string(line);
        }
    }
    return 0;
}

template <typename T>
void set(CURL* curl, CURLoption option, T value)
{
    if (const CURLcode rc = curl_easy_setopt(curl, option, value); rc != CURLE_OK)
        throw std::runtime_error(fmt::format("libcurl option {}: {}", static_cast<int>(option),
                                             curl_easy_strerror(rc)));
}

}  // namespace

CurlGlobal::CurlGlobal()
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
}

CurlGlobal::~CurlGlobal()
{
    curl_global_cleanup();
}

SendResult send(const SmtpSettings& settings, const std::string& recipient, const std::string& message)
{
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> handle(curl_easy_init(), &curl_easy_cleanup);
    if (!handle) throw std::runtime_error("curl_easy_init failed");
    CURL* curl = handle.get();

    const std::string from = "<" + settings.from + ">";
    const std::string to = "<" + recipient + ">";
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> recipients(
        curl_slist_append(nullptr, to.c_str()), &curl_slist_free_all);
    Upload upload{message};
    Dialogue dialogue;
    char error_buffer[CURL_ERROR_SIZE] = "";

    set(curl, CURLOPT_URL, settings.url.c_str());
    set(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (settings.starttls) set(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    if (!settings.ca_file.empty()) set(curl, CURLOPT_CAINFO, settings.ca_file.c_str());
    if (!settings.user.empty()) set(curl, CURLOPT_USERNAME, settings.user.c_str());
    if (!settings.password.empty()) set(curl, CURLOPT_PASSWORD, settings.password.c_str());
    set(curl, CURLOPT_MAIL_FROM, from.c_str());
    set(curl, CURLOPT_MAIL_RCPT, recipients.get());
    set(curl, CURLOPT_UPLOAD, 1L);
    set(curl, CURLOPT_READFUNCTION, &read_message);
    set(curl, CURLOPT_READDATA, &upload);
    set(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
    // The outbox row stays locked while we talk to the server: bound the time that takes.
    set(curl, CURLOPT_CONNECTTIMEOUT, 15L);
    set(curl, CURLOPT_TIMEOUT, 120L);
    set(curl, CURLOPT_NOSIGNAL, 1L);
    set(curl, CURLOPT_ERRORBUFFER, error_buffer);
    // The debug callback only runs in verbose mode; it prints nothing itself.
    set(curl, CURLOPT_VERBOSE, 1L);
    set(curl, CURLOPT_DEBUGFUNCTION, &trace);
    set(curl, CURLOPT_DEBUGDATA, &dialogue);

    const CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) return {SendResult::Status::Sent, {}};

    std::string error = *error_buffer ? error_buffer : curl_easy_strerror(rc);
    if (dialogue.rejection.empty()) return {SendResult::Status::Transient, error};

    error = dialogue.rejected_command.empty()
                ? fmt::format("server refused the session: {}", dialogue.rejection)
                : fmt::format("{} refused: {}", dialogue.rejected_command, dialogue.rejection);
    const bool permanent = dialogue.rejection[0] == '5'
                           && (dialogue.rejected_command == "RCPT" || dialogue.rejected_command == "DATA");
    return {permanent ? SendResult::Status::Permanent : SendResult::Status::Transient, error};
}

}  // namespace envsync::smtp
