#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "retry.h"

namespace envsync {

struct SmtpSettings {
    std::string url;  // smtp://host:port or smtps://host:port
    bool starttls = false;
    // Lets credentials go over an smtp:// connection without STARTTLS (a relay on loopback or
    // reached through a tunnel); without it such a configuration is refused.
    bool allow_plaintext_auth = false;
    std::string ca_file;  // CA bundle for a relay with a private CA; empty: system store
    std::string user;
    std::string password;
    std::string from;
};

struct Config {
    std::string db;  // libpq conninfo; empty means libpq's PG* environment defaults
    SmtpSettings smtp;
    std::string message_id_domain;
    bool once = false;
    std::chrono::seconds poll_interval{30};
    RetryPolicy retry;
};

struct CommandLine {
    bool help = false;
    Config config;
};

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Flags win over environment variables. Throws ConfigError with a message for the operator.
CommandLine parse_command_line(const std::vector<std::string>& args, const EnvLookup& env);

std::string usage();

// The URL without user:password@, fit for logs.
std::string redact_url(const std::string& url);

}  // namespace envsync
