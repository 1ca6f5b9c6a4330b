#include <atomic>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <fmt/core.h>

#include "admin_api.h"
#include "admin_config.h"
#include "admin_session.h"
#include "log.h"

int main(int argc, char** argv)
{
    using namespace envsync;
    log::set_program("envsync-admin");
    admin::CommandLine command_line;
    try {
        command_line = admin::parse_command_line(std::vector<std::string>(argv + 1, argv + argc),
                                                 [](const std::string& name) -> std::optional<std::string> {
                                                     const char* value = std::getenv(name.c_str());
                                                     if (value) return std::string(value);
                                                     return std::nullopt;
                                                 });
    } catch (const ConfigError& e) {
        fmt::print(stderr, "envsync-admin: {}\n", e.what());
        return 2;
    }
    if (command_line.help) {
        fmt::print("{}", admin::usage());
        return 0;
    }
    const admin::Config& config = command_line.config;
    // Users log in with what they type, never with a password of the admin's own environment.
    for (const char* name : {"PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE", "PGSERVICE"}) unsetenv(name);

    // SIGTERM and SIGINT are taken by one thread, which stops the server; every other thread
    // (the server's, the sessions') starts with them blocked.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        std::unique_ptr<httplib::Server> server;
        if (config.tls()) {
            auto tls = std::make_unique<httplib::SSLServer>(config.tls_cert.c_str(), config.tls_key.c_str());
            if (!tls->is_valid()) {
                log::error("cannot use the TLS certificate {} with the key {}", config.tls_cert, config.tls_key);
                return 2;
            }
            SSL_CTX_set_min_proto_version(tls->ssl_context(), TLS1_2_VERSION);
            server = std::move(tls);
        } else {
            server = std::make_unique<httplib::Server>();
        }
        server->set_payload_max_length(1 << 20);

        admin::SessionStore sessions(config.session_idle, config.session_lifetime, config.max_sessions);
        sessions.start_sweeping(std::chrono::seconds(1));
        admin::install_routes(*server, config, sessions);

        const int port = config.port == 0 ? server->bind_to_any_port(config.listen)
                                          : (server->bind_to_port(config.listen, config.port) ? config.port : -1);
        if (port < 0) {
            log::error("cannot listen on {} port {}", config.listen, config.port);
            return 1;
        }
        const bool v6 = config.listen.find(':') != std::string::npos;
        log::info("listening on {}://{}{}{}:{}/", config.tls() ? "https" : "http", v6 ? "[" : "", config.listen,
                  v6 ? "]" : "", port);

        std::atomic<bool> done{false};
        std::thread stopper([&] {
            const timespec tick{0, 200'000'000};
            while (!done) {
                if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) {
                    log::info("stopping");
                    server->stop();
                    return;
                }
            }
        });
        const bool served = server->listen_after_bind();
        done = true;
        stopper.join();
        sessions.stop();
        log::info("stopped");
        return served ? 0 : 1;
    } catch (const std::exception& e) {
        log::error("{}", e.what());
        return 1;
    }
}
