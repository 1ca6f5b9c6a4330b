#include "admin_http.h"

#include <cstdint>
#include <stdexcept>

#include <fmt/core.h>
#include <sys/random.h>

#include "admin_config.h"

namespace envsync::admin::http {

std::string random_token()
{
    unsigned char bytes[32];
    std::size_t filled = 0;
    while (filled < sizeof bytes) {
        const ssize_t n = getrandom(bytes + filled, sizeof bytes - filled, 0);
        if (n < 0) throw std::runtime_error("the kernel's random source failed");
        filled += static_cast<std::size_t>(n);
    }
    std::string token;
    for (unsigned char b : bytes) token += fmt::format("{:02x}", b);
    return token;
}

bool same_token(const std::string& a, const std::string& b)
{
    if (a.size() != b.size() || a.empty()) return false;
    unsigned char difference = 0;
    for (std::size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
    return difference == 0;
}

std::optional<std::string> cookie(const std::string& header, const std::string& name)
{
    std::size_t start = 0;
    while (start < header.size()) {
        auto end = header.find(';', start);
        if (end == std::string::npos) end = header.size();
        auto item = header.substr(start, end - start);
        const auto first = item.find_first_not_of(' ');
        item.erase(0, first == std::string::npos ? item.size() : first);
        const auto eq = item.find('=');
        if (eq != std::string::npos && item.compare(0, eq, name) == 0 && eq == name.size())
            return item.substr(eq + 1);
        start = end + 1;
    }
    return std::nullopt;
}

std::string cookie_name(bool tls)
{
    return tls ? "__Host-envsync_session" : "envsync_session";
}

std::string session_cookie(bool tls, const std::string& token)
{
    return fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict{}", cookie_name(tls), token, tls ? "; Secure" : "");
}

std::string expired_cookie(bool tls)
{
    return fmt::format("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}", cookie_name(tls), tls ? "; Secure" : "");
}

namespace {

// The host part of a Host header value (host, host:port, [v6]:port), without brackets.
std::string host_name(const std::string& host)
{
    if (!host.empty() && host.front() == '[') return host.substr(1, host.find(']') - 1);
    return host.substr(0, host.find(':'));
}

}  // namespace

bool host_allowed(const std::string& host, bool tls)
{
    if (host.empty()) return false;
    if (tls) return true;  // a rebinding site cannot show the admin's certificate
    return loopback(host_name(host));
}

bool same_origin(const std::string& origin, const std::string& sec_fetch_site, const std::string& host, bool tls)
{
    if (!sec_fetch_site.empty() && sec_fetch_site != "same-origin") return false;
    return !host.empty() && origin == fmt::format("{}://{}", tls ? "https" : "http", host);
}

std::vector<std::pair<std::string, std::string>> security_headers(bool tls)
{
    std::vector<std::pair<std::string, std::string>> headers{
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
         "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"},
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "no-referrer"},
        {"Cross-Origin-Opener-Policy", "same-origin"},
        {"Cross-Origin-Resource-Policy", "same-origin"},
        {"Cache-Control", "no-store"},
    };
    if (tls) headers.emplace_back("Strict-Transport-Security", "max-age=31536000");
    return headers;
}

}  // namespace envsync::admin::http
