#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

// The web admin's request checks and headers, apart from the HTTP library so they are tested alone.
namespace envsync::admin::http {

// 32 bytes from the kernel's random source, hex-encoded.
std::string random_token();

// Compares in time independent of where the texts differ.
bool same_token(const std::string& a, const std::string& b);

// The value of cookie NAME in a Cookie header.
std::optional<std::string> cookie(const std::string& header, const std::string& name);

// The session cookie: __Host- prefixed and Secure over TLS.
std::string cookie_name(bool tls);
std::string session_cookie(bool tls, const std::string& token);
std::string expired_cookie(bool tls);

// Without TLS the admin listens on loopback only; a page of another site that makes a browser
// resolve its own name to 127.0.0.1 (DNS rebinding) is turned away by the Host it sends.
bool host_allowed(const std::string& host, bool tls);

// A state-changing request must come from the admin's own page: its Origin (browsers send one
// with every POST) names this very host, and Sec-Fetch-Site, when sent, is same-origin.
bool same_origin(const std::string& origin, const std::string& sec_fetch_site, const std::string& host, bool tls);

// Headers of every response: no inline script, no framing, nothing cached.
std::vector<std::pair<std::string, std::string>> security_headers(bool tls);

}  // namespace envsync::admin::http
