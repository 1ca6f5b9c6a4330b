#pragma once

#include <string_view>
#include <utility>

#include <fmt/core.h>

namespace envsync::log {

enum class Level { Info, Warning, Error };

// One line per event on stderr (journald or the test harness picks it up).
void write(Level level, std::string_view message);

// The program name each line carries (envsync-orchestrator unless set); set it before any
// thread logs.
void set_program(std::string_view name);

template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args)
{
    write(Level::Info, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void warning(fmt::format_string<Args...> format, Args&&... args)
{
    write(Level::Warning, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args)
{
    write(Level::Error, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace envsync::log
