#include <csignal>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "smtp.h"

int main(int argc, char** argv)
{
    using namespace envsync;
    CommandLine command_line;
    try {
        command_line = parse_command_line(std::vector<std::string>(argv + 1, argv + argc),
                                          [](const std::string& name) -> std::optional<std::string> {
                                              const char* value = std::getenv(name.c_str());
                                              if (value) return std::string(value);
                                              return std::nullopt;
                                          });
    } catch (const ConfigError& e) {
        fmt::print(stderr, "envsync-orchestrator: {}\n", e.what());
        return 2;
    }
    if (command_line.help) {
        fmt::print("{}", usage());
        return 0;
    }

    try {
        // A peer closing a socket must surface as an error code, not kill the daemon.
        std::signal(SIGPIPE, SIG_IGN);
        const smtp::CurlGlobal curl;
        const StopSignal stop;
        return run(command_line.config, stop);
    } catch (const std::exception& e) {
        log::error("{}", e.what());
        return 1;
    }
}
