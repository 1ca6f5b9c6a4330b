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

// What the programs' command lines share (the daemon's and the admin's).

// Walks a command line of --flag value and --flag=value; errors are ConfigError.
class FlagReader {
public:
    explicit FlagReader(const std::vector<std::string>& args) : args_(args) {}
    // Moves to the next flag; false at the end.
    bool next();
    const std::string& flag() const { return flag_; }
    // The flag's value: after '=' or the next argument.
    std::string value();
    // Refuses --flag=value for a flag without one.
    void no_value() const;

private:
    const std::vector<std::string>& args_;
    std::size_t index_ = 0;
    std::string flag_;
    std::optional<std::string> inline_value_;
};

int parse_number(const std::string& flag, const std::string& text, int min, int max);
// Whether a flag would carry a password (refused: command lines are visible to every local user).
bool names_password(const std::string& flag);
// Whether a libpq connection string or URI holds a password; ConfigError when it cannot be parsed.
bool conninfo_has_password(const std::string& conninfo);

}  // namespace envsync
