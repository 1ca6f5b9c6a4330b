#include "support.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>

#include "smtp.h"

extern char** environ;

namespace envsync::test {

namespace fs = std::filesystem;

namespace {

// libcurl's global state, for the whole test program as main() has it for the daemon.
const smtp::CurlGlobal curl_global;

// Starts argv with `extra_env` added to the environment and stdout/stderr appended to `log`;
// returns the child's pid. Everything is prepared before fork().
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env, const std::string& log)
{
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> env;
    for (const auto& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
    for (char** e = environ; *e; ++e) {
        const std::string_view entry(*e);
        const std::string_view name = entry.substr(0, entry.find('='));
        const bool replaced = std::any_of(extra_env.begin(), extra_env.end(), [&](const std::string& x) {
            return x.compare(0, name.size() + 1, std::string(name) + "=") == 0;
        });
        if (!replaced) env.push_back(*e);
    }
    env.push_back(nullptr);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) throw std::runtime_error("cannot open " + log);

    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out, 1);
        ::dup2(out, 2);
        ::execve(args[0], args.data(), env.data());
        ::_exit(127);
    }
    ::close(out);
    if (pid < 0) throw std::runtime_error("fork failed");
    return pid;
}

int wait_for_exit(pid_t pid)
{
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int free_port()
{
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0
        || ::getsockname(s, reinterpret_cast<sockaddr*>(&address), &length) != 0)
        throw std::runtime_error("cannot find a free port");
    ::close(s);
    return ntohs(address.sin_port);
}

bool accepts_connections(int port)
{
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(s);
    return ok;
}

std::string read_file(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
}

}  // namespace

int run_program(const std::vector<std::string>& argv)
{
    return wait_for_exit(spawn(argv, {}, "/dev/null"));
}

void DatabaseTest::SetUp()
{
    const char* conninfo = std::getenv("ENVSYNC_UNIT_DB");
    if (!conninfo || !*conninfo)
        FAIL() << "ENVSYNC_UNIT_DB is not set: this test needs a PostgreSQL database with the envsync extension "
                  "(a libpq conninfo; test/run_all.sh makes one on the PROD cluster)";
    conninfo_ = conninfo;
    try {
        db_ = std::make_unique<pg::Connection>(conninfo_);
        db_->exec("TRUNCATE envsync.outbox");
    } catch (const pg::Error& e) {
        FAIL() << "the database of ENVSYNC_UNIT_DB is not usable: " << e.what();
    }
}

std::string DatabaseTest::value(const std::string& sql, std::initializer_list<pg::Param> params)
{
    const pg::Result r = db_->exec(sql.c_str(), params);
    return r.rows() == 0 ? "" : r.text(0, 0);
}

std::int64_t DatabaseTest::insert_mail(const std::string& kind, const std::string& recipient,
                                       const std::string& subject, const std::string& payload)
{
    return std::stoll(value("INSERT INTO envsync.outbox (kind, recipient, subject, payload)"
                            " VALUES ($1, $2, $3, $4) RETURNING id",
                            {kind, recipient, subject, payload}));
}

TempDir::TempDir()
{
    std::string pattern = (fs::temp_directory_path() / "envsync-unit-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
}

TempDir::~TempDir()
{
    std::error_code ignored;
    fs::remove_all(path_, ignored);
}

SmtpSink::SmtpSink(std::vector<std::string> extra_args) : extra_args_(std::move(extra_args))
{
    fs::create_directory(dir_.path() / "hold");
    port_ = free_port();
    start();
}

SmtpSink::~SmtpSink()
{
    stop();
}

std::string SmtpSink::url(const std::string& scheme) const
{
    return fmt::format("{}://127.0.0.1:{}", scheme, port_);
}

void SmtpSink::start()
{
    std::vector<std::string> argv{"/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", fmt::format("127.0.0.1:{}", port_),
                                  "-c", "smtp_handler.RejectingMailbox"};
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    argv.push_back((dir_.path() / "maildir").string());
    pid_ = spawn(argv,
                 {"PYTHONPATH=" ENVSYNC_SMTP_HELPERS, "PYTHONDONTWRITEBYTECODE=1",
                  "ENVSYNC_SMTP_HOLD_DIR=" + (dir_.path() / "hold").string()},
                 (dir_.path() / "smtp.log").string());
    const bool up = eventually([&] {
        int status = 0;
        return ::waitpid(pid_, &status, WNOHANG) != 0 || accepts_connections(port_);
    });
    if (!up || !accepts_connections(port_)) {
        const std::string log = read_file(dir_.path() / "smtp.log");
        stop();
        throw std::runtime_error("aiosmtpd did not start: " + log);
    }
}

void SmtpSink::stop()
{
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    wait_for_exit(pid_);
    pid_ = -1;
}

std::vector<std::string> SmtpSink::messages() const
{
    std::vector<std::string> result;
    const fs::path stored = dir_.path() / "maildir" / "new";
    if (!fs::exists(stored)) return result;
    for (const auto& entry : fs::directory_iterator(stored)) result.push_back(read_file(entry.path()));
    return result;
}

std::vector<std::string> SmtpSink::message_ids() const
{
    std::vector<std::string> ids;
    for (const auto& message : messages()) {
        std::istringstream lines(message);
        for (std::string line; std::getline(lines, line);) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) break;  // end of the header
            if (line.rfind("Message-ID: ", 0) == 0) ids.push_back(line.substr(12));
        }
    }
    return ids;
}

std::string SmtpSink::held() const
{
    std::string id = read_file(dir_.path() / "hold" / "held");
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
}

void SmtpSink::release() const
{
    std::ofstream(dir_.path() / "hold" / "release").close();
}

Certificate make_certificate(const fs::path& dir)
{
    Certificate c{(dir / "cert.pem").string(), (dir / "key.pem").string()};
    const int rc = run_program({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", c.key,
                                "-out", c.cert});
    if (rc != 0) throw std::runtime_error("openssl could not make a certificate");
    return c;
}

}  // namespace envsync::test
