#include "log.h"

#include <cstdio>
#include <ctime>
#include <string>

namespace envsync::log {

namespace {

std::string program = "envsync-orchestrator";

const char* level_name(Level level)
{
    switch (level) {
    case Level::Info: return "info";
    case Level::Warning: return "warning";
    case Level::Error: return "error";
    }
    return "?";
}

}  // namespace

void set_program(std::string_view name)
{
    program = name;
}

void write(Level level, std::string_view message)
{
    // Messages carry server replies and data values: keep each on one line so nothing can
    // forge further log entries.
    std::string line(message);
    for (char& c : line) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    }
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    fmt::print(stderr, "{} {} {}: {}\n", stamp, program, level_name(level), line);
    std::fflush(stderr);
}

}  // namespace envsync::log
