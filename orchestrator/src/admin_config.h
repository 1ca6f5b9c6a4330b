#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "config.h"

namespace envsync::admin {

struct Config {
    std::string db;  // libpq conninfo of PROD without user and password (each user logs in)
    std::string listen = "127.0.0.1";
    int port = 8080;  // 0: any free port (the log says which)
    std::string tls_cert;
    std::string tls_key;
    std::chrono::seconds session_idle{30 * 60};
    std::chrono::seconds session_lifetime{12 * 60 * 60};
    int max_sessions = 100;

    bool tls() const { return !tls_cert.empty(); }
};

struct CommandLine {
    bool help = false;
    Config config;
};

// Flags win over environment variables. Throws ConfigError with a message for the operator.
CommandLine parse_command_line(const std::vector<std::string>& args, const EnvLookup& env);

std::string usage();

// Whether a listen address only accepts connections from this machine.
bool loopback(const std::string& address);

}  // namespace envsync::admin
