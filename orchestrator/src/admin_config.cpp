#include "admin_config.h"

#include <arpa/inet.h>
#include <fmt/core.h>

namespace envsync::admin {

bool loopback(const std::string& address)
{
    if (address == "localhost") return true;
    in_addr v4{};
    if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    return inet_pton(AF_INET6, address.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::string usage()
{
    return R"(Usage: envsync-admin [OPTIONS]

The web admin of envsync (System > Synchronization): users log in with their own PostgreSQL
role and password, and work in PROD's database through their own connections.

  --db CONNINFO              PROD's database (libpq connection string, without user and
                             password); env ENVSYNC_DB_URL
  --listen ADDRESS           address to listen on (default 127.0.0.1); any other than a
                             loopback address needs TLS
  --port N                   port (default 8080; 0: any free port, see the log)
  --tls-cert FILE            TLS certificate chain (PEM); with --tls-key, serves HTTPS
  --tls-key FILE             its private key (PEM)
  --session-timeout SECONDS  log a user out after this long without a request (default 1800)
  --session-lifetime SECONDS log a user out this long after logging in (default 43200)
  --max-sessions N           users logged in at once (default 100; each holds two connections)
  -h, --help                 show this help
)";
}

CommandLine parse_command_line(const std::vector<std::string>& args, const EnvLookup& env)
{
    CommandLine result;
    Config& c = result.config;
    std::optional<std::string> db_flag;

    FlagReader flags(args);
    while (flags.next()) {
        const std::string& flag = flags.flag();
        if (flag == "-h" || flag == "--help") {
            flags.no_value();
            result.help = true;
        } else if (flag == "--db") {
            db_flag = flags.value();
        } else if (flag == "--listen") {
            c.listen = flags.value();
        } else if (flag == "--port") {
            c.port = parse_number(flag, flags.value(), 0, 65535);
        } else if (flag == "--tls-cert") {
            c.tls_cert = flags.value();
        } else if (flag == "--tls-key") {
            c.tls_key = flags.value();
        } else if (flag == "--session-timeout") {
            c.session_idle = std::chrono::seconds(parse_number(flag, flags.value(), 1, 7 * 86400));
        } else if (flag == "--session-lifetime") {
            c.session_lifetime = std::chrono::seconds(parse_number(flag, flags.value(), 1, 30 * 86400));
        } else if (flag == "--max-sessions") {
            c.max_sessions = parse_number(flag, flags.value(), 1, 10000);
        } else if (names_password(flag)) {
            throw ConfigError(fmt::format("refusing {}: envsync-admin holds no password; each user logs in "
                                          "with their own PostgreSQL role",
                                          flag));
        } else {
            throw ConfigError(fmt::format("unknown option '{}' (see --help)", flag));
        }
    }
    if (result.help) return result;

    c.db = db_flag ? *db_flag : env("ENVSYNC_DB_URL").value_or("");
    if (conninfo_has_password(c.db))
        throw ConfigError("refusing a password in the database connection string: each user logs in with their own");
    if (c.tls_cert.empty() != c.tls_key.empty())
        throw ConfigError("TLS needs both --tls-cert and --tls-key");
    if (!c.tls() && !loopback(c.listen))
        throw ConfigError(fmt::format("refusing to listen on {} without TLS: passwords and sessions would cross the "
                                      "network in clear; give --tls-cert and --tls-key, or listen on 127.0.0.1",
                                      c.listen));
    if (c.session_lifetime < c.session_idle)
        throw ConfigError("--session-lifetime must not be less than --session-timeout");
    return result;
}

}  // namespace envsync::admin
