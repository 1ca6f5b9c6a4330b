#include "config.h"

#include <charconv>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/core.h>
#include <libpq-fe.h>

#include "mime.h"

namespace envsync {

namespace {

// Where the user[:password] of scheme://user[:password]@host/... starts and ends, if present.
std::optional<std::pair<std::size_t, std::size_t>> userinfo(const std::string& url)
{
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) return std::nullopt;
    const auto start = scheme_end + 3;
    const auto authority = url.substr(start, url.find_first_of("/?#", start) - start);
    const auto at = authority.rfind('@');
    if (at == std::string::npos) return std::nullopt;
    return std::make_pair(start, start + at);
}

bool url_has_password(const std::string& url)
{
    const auto span = userinfo(url);
    return span && url.substr(span->first, span->second - span->first).find(':') != std::string::npos;
}

std::string read_password_file(const std::string& path)
{
    std::ifstream in(path);
    if (!in) throw ConfigError(fmt::format("cannot read the SMTP password file {}", path));
    std::ostringstream content;
    content << in.rdbuf();
    std::string password = content.str();
    // Editors and `echo` leave a final newline that is not part of the password.
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
    return password;
}

}  // namespace

int parse_number(const std::string& flag, const std::string& text, int min, int max)
{
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max)
        throw ConfigError(fmt::format("{} needs a whole number from {} to {}, not '{}'", flag, min, max, text));
    return value;
}

bool names_password(const std::string& flag)
{
    return flag.find("password") != std::string::npos || flag.find("passwd") != std::string::npos;
}

bool conninfo_has_password(const std::string& conninfo)
{
    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
        PQconninfoParse(conninfo.c_str(), &error), &PQconninfoFree);
    if (!options) {
        std::string message = error ? error : "out of memory";
        PQfreemem(error);
        throw ConfigError("invalid database connection string: " + message);
    }
    for (const PQconninfoOption* o = options.get(); o->keyword; ++o) {
        if (std::string_view(o->keyword) == "password" && o->val && *o->val) return true;
    }
    return false;
}

bool FlagReader::next()
{
    if (index_ >= args_.size()) return false;
    flag_ = args_[index_++];
    inline_value_.reset();
    if (const auto eq = flag_.find('='); flag_.rfind("--", 0) == 0 && eq != std::string::npos) {
        inline_value_ = flag_.substr(eq + 1);
        flag_.erase(eq);
    }
    return true;
}

std::string FlagReader::value()
{
    if (inline_value_) return *inline_value_;
    if (index_ >= args_.size()) throw ConfigError(fmt::format("{} needs a value", flag_));
    return args_[index_++];
}

void FlagReader::no_value() const
{
    if (inline_value_) throw ConfigError(fmt::format("{} takes no value", flag_));
}

std::string redact_url(const std::string& url)
{
    const auto span = userinfo(url);
    return span ? url.substr(0, span->first) + url.substr(span->second + 1) : url;
}

std::string usage()
{
    return R"(Usage: envsync-orchestrator [OPTIONS]

Delivers the e-mails envsync queues in envsync.outbox.

  --db CONNINFO              PostgreSQL connection string (libpq); env ENVSYNC_DB_URL.
                             Passwords come from PGPASSWORD or ~/.pgpass, never from here.
  --smtp-url URL             smtp://host[:port] or smtps://host[:port]; env ENVSYNC_SMTP_URL
  --smtp-starttls            require STARTTLS on an smtp:// connection
  --smtp-allow-plaintext-auth
                             send the SMTP user and password over smtp:// without
                             STARTTLS (refused otherwise)
  --smtp-ca-file FILE        trust the CA certificates in FILE instead of the system store
  --smtp-password-file FILE  read the SMTP password from FILE
                             (or env ENVSYNC_SMTP_PASSWORD; user in env ENVSYNC_SMTP_USER)
  --from ADDRESS             sender address; env ENVSYNC_MAIL_FROM
  --message-id-domain NAME   domain in Message-ID headers (default: the sender's domain)
  --once                     deliver what is due, then exit (tests, cron)
  --poll-interval SECONDS    look for due mail at least this often (default 30)
  --max-attempts N           attempts before a mail is marked failed (default 8)
  --backoff-base SECONDS     wait after the first failed attempt, doubling (default 30)
  --backoff-max SECONDS      longest wait between attempts (default 3600)
  -h, --help                 show this help
)";
}

CommandLine parse_command_line(const std::vector<std::string>& args, const EnvLookup& env)
{
    CommandLine result;
    Config& c = result.config;
    std::optional<std::string> db_flag, url_flag, from_flag, password_file;

    FlagReader flags(args);
    while (flags.next()) {
        const std::string& flag = flags.flag();
        auto value = [&] { return flags.value(); };
        auto no_value = [&] { flags.no_value(); };

        if (flag == "-h" || flag == "--help") {
            no_value();
            result.help = true;
        } else if (flag == "--db") {
            db_flag = value();
        } else if (flag == "--smtp-url") {
            url_flag = value();
        } else if (flag == "--smtp-starttls") {
            no_value();
            c.smtp.starttls = true;
        } else if (flag == "--smtp-allow-plaintext-auth") {
            no_value();
            c.smtp.allow_plaintext_auth = true;
        } else if (flag == "--smtp-ca-file") {
            c.smtp.ca_file = value();
        } else if (flag == "--smtp-password-file") {
            password_file = value();
        } else if (names_password(flag)) {
            // Command lines are visible to every local user (ps, /proc) and land in shell history.
            throw ConfigError(fmt::format("refusing {}: a password on the command line is visible to "
                                          "other users; use ENVSYNC_SMTP_PASSWORD or --smtp-password-file",
                                          flag));
        } else if (flag == "--from") {
            from_flag = value();
        } else if (flag == "--message-id-domain") {
            c.message_id_domain = value();
        } else if (flag == "--once") {
            no_value();
            c.once = true;
        } else if (flag == "--poll-interval") {
            c.poll_interval = std::chrono::seconds(parse_number(flag, value(), 1, 86400));
        } else if (flag == "--max-attempts") {
            c.retry.max_attempts = parse_number(flag, value(), 1, 1000);
        } else if (flag == "--backoff-base") {
            c.retry.base = std::chrono::seconds(parse_number(flag, value(), 1, 86400));
        } else if (flag == "--backoff-max") {
            c.retry.cap = std::chrono::seconds(parse_number(flag, value(), 1, 7 * 86400));
        } else {
            throw ConfigError(fmt::format("unknown option '{}' (see --help)", flag));
        }
    }
    if (result.help) return result;

    if (db_flag && conninfo_has_password(*db_flag))
        throw ConfigError("refusing a password in --db: use PGPASSWORD or ~/.pgpass");
    if (url_flag && url_has_password(*url_flag))
        throw ConfigError("refusing a password in --smtp-url: use ENVSYNC_SMTP_PASSWORD or --smtp-password-file");

    c.db = db_flag ? *db_flag : env("ENVSYNC_DB_URL").value_or("");
    c.smtp.url = url_flag ? *url_flag : env("ENVSYNC_SMTP_URL").value_or("");
    c.smtp.from = from_flag ? *from_flag : env("ENVSYNC_MAIL_FROM").value_or("");
    c.smtp.user = env("ENVSYNC_SMTP_USER").value_or("");
    const auto env_password = env("ENVSYNC_SMTP_PASSWORD");
    if (env_password && password_file)
        throw ConfigError("give the SMTP password either in ENVSYNC_SMTP_PASSWORD or in --smtp-password-file, not both");
    c.smtp.password = password_file ? read_password_file(*password_file) : env_password.value_or("");

    if (c.smtp.url.rfind("smtp://", 0) != 0 && c.smtp.url.rfind("smtps://", 0) != 0)
        throw ConfigError("an smtp:// or smtps:// URL is required (--smtp-url or ENVSYNC_SMTP_URL)");
    if (c.smtp.from.empty()) throw ConfigError("a sender address is required (--from or ENVSYNC_MAIL_FROM)");
    if (const auto problem = mime::address_problem(c.smtp.from))
        throw ConfigError(fmt::format("invalid sender address: {}", *problem));
    if (!c.smtp.password.empty() && c.smtp.user.empty())
        throw ConfigError("an SMTP password needs a user name in ENVSYNC_SMTP_USER");
    // libcurl authenticates whenever it has a user name, from ENVSYNC_SMTP_USER or the URL.
    const bool credentials = !c.smtp.user.empty() || userinfo(c.smtp.url);
    if (credentials && c.smtp.url.rfind("smtp://", 0) == 0 && !c.smtp.starttls && !c.smtp.allow_plaintext_auth)
        throw ConfigError("refusing to send SMTP credentials without TLS: use smtps://, --smtp-starttls, or "
                          "--smtp-allow-plaintext-auth if the connection to the relay is protected otherwise");
    if (c.message_id_domain.empty()) c.message_id_domain = c.smtp.from.substr(c.smtp.from.rfind('@') + 1);
    if (!mime::plain_domain(c.message_id_domain))
        throw ConfigError(fmt::format("invalid --message-id-domain '{}'", c.message_id_domain));
    if (c.retry.cap < c.retry.base) throw ConfigError("--backoff-max must not be less than --backoff-base");
    return result;
}

}  // namespace envsync
