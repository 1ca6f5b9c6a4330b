#pragma once

#include <string_view>

namespace envsync::admin {

// The page's files (orchestrator/web), compiled into the program.
struct Asset {
    std::string_view path;  // "/app.js"
    std::string_view content_type;
    std::string_view body;
};

// nullptr for an unknown path; "/" is the page itself.
const Asset* find_asset(std::string_view path);

}  // namespace envsync::admin
