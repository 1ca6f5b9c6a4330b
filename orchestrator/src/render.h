#pragma once

#include <optional>
#include <string>
#include <vector>

// Turns an outbox row, already flattened to text by PostgreSQL, into the human-readable
// plain-text and HTML bodies of the e-mail.
namespace envsync {

// A payload value as text; nullopt when the key was missing or JSON null.
using Value = std::optional<std::string>;

struct ModuleRow {
    Value module;
    Value added;  // the payload's "new" count
    Value modified;
    Value deleted;
    Value conflicts;
    Value inserted;
    Value updated;
};

struct Notification {
    std::string kind;
    std::string subject;
    Value title;  // the heading and the text envsync wrote (its message for a synchronization)
    Value text;
    Value comparison_id;
    Value sync_id;
    Value source;
    Value target;
    Value mode;
    Value started_by;
    Value scheduled_by;
    Value test_import;
    Value finished_at;
    Value error;
    Value detail;
    Value hint;
    bool has_modules = false;  // "modules" was a JSON array (possibly empty)
    std::vector<ModuleRow> modules;
};

struct Rendered {
    std::string text;
    std::string html;
};

// Throws std::invalid_argument for a kind this orchestrator does not know.
Rendered render(const Notification& notification);

}  // namespace envsync
