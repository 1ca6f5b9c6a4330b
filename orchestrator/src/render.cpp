#include "render.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include <fmt/core.h>

#include "mime.h"

namespace envsync {

namespace {

// Everything a mail shows, independent of the output format; escaping is the HTML writer's job.
struct Table {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

struct Document {
    std::string title;
    std::string lead;  // envsync's own text, before the facts
    std::vector<std::pair<std::string, std::string>> facts;
    std::optional<Table> table;
    std::string note;  // shown instead of an empty table
};

std::string shown(const Value& value)
{
    return value && !value->empty() ? *value : "-";
}

std::string yes_no(const Value& value)
{
    if (value == "true") return "yes";
    if (value == "false") return "no";
    return shown(value);
}

std::string numbered(const Value& id)
{
    return id ? "#" + *id : "-";
}

// Display width for the text table: count code points, not bytes.
std::size_t width(const std::string& text)
{
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

std::string pad(const std::string& text, std::size_t to, bool right)
{
    const std::string fill(to > width(text) ? to - width(text) : 0, ' ');
    return right ? fill + text : text + fill;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to)
{
    for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
        text.replace(pos, from.size(), to);
    return text;
}

std::string text_body(const Document& doc)
{
    std::string out = doc.title + "\n" + std::string(width(doc.title), '=') + "\n\n";
    if (!doc.lead.empty()) out += doc.lead + "\n\n";

    std::size_t label_width = 0;
    for (const auto& fact : doc.facts) label_width = std::max(label_width, width(fact.first) + 1);
    for (const auto& [label, value] : doc.facts) {
        // Continuation lines of multi-line values (error texts) line up under the first.
        const std::string indent(label_width + 2, ' ');
        out += pad(label + ":", label_width, false) + "  " + replace_all(value, "\n", "\n" + indent) + "\n";
    }

    if (doc.table) {
        const Table& t = *doc.table;
        std::vector<std::size_t> widths;
        for (const auto& h : t.header) widths.push_back(width(h));
        for (const auto& row : t.rows)
            for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], width(row[i]));

        auto line = [&](const std::vector<std::string>& cells) {
            std::string l;
            for (std::size_t i = 0; i < cells.size(); ++i)
                l += (i ? "  " : "") + pad(cells[i], widths[i], i > 0);
            return l.erase(l.find_last_not_of(' ') + 1) + "\n";
        };
        std::vector<std::string> rule;
        for (auto w : widths) rule.emplace_back(w, '-');
        out += "\n" + line(t.header) + line(rule);
        for (const auto& row : t.rows) out += line(row);
    } else if (!doc.note.empty()) {
        out += "\n" + doc.note + "\n";
    }
    return out;
}

std::string html_body(const Document& doc, const std::string& subject)
{
    using mime::html_escape;
    constexpr std::string_view cell = "padding:2px 10px;border:1px solid #ccc";

    std::string out = fmt::format(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n"
        "<body style=\"font-family:sans-serif\">\n<h2>{}</h2>\n",
        html_escape(subject), html_escape(doc.title));
    if (!doc.lead.empty()) out += fmt::format("<p>{}</p>\n", html_escape(doc.lead));
    out += "<table>\n";
    for (const auto& [label, value] : doc.facts)
        out += fmt::format("<tr><th style=\"text-align:left;padding-right:10px\">{}</th>"
                           "<td style=\"white-space:pre-wrap\">{}</td></tr>\n",
                           html_escape(label), html_escape(value));
    out += "</table>\n";

    if (doc.table) {
        out += "<table style=\"border-collapse:collapse;margin-top:1em\">\n<tr>";
        for (const auto& h : doc.table->header)
            out += fmt::format("<th style=\"{}\">{}</th>", cell, html_escape(h));
        out += "</tr>\n";
        for (const auto& row : doc.table->rows) {
            out += "<tr>";
            for (std::size_t i = 0; i < row.size(); ++i)
                out += fmt::format("<td style=\"{};text-align:{}\">{}</td>", cell,
                                   i ? "right" : "left", html_escape(row[i]));
            out += "</tr>\n";
        }
        out += "</table>\n";
    } else if (!doc.note.empty()) {
        out += fmt::format("<p>{}</p>\n", html_escape(doc.note));
    }
    return out + "</body></html>\n";
}

Document comparison_finished(const Notification& n)
{
    Document doc;
    doc.facts = {{"Mode", shown(n.mode)},
                 {"Started by", shown(n.started_by)},
                 {"Finished at", shown(n.finished_at)}};
    if (!n.modules.empty()) {
        Table t{{"Module", "New", "Modified", "Deleted", "Conflicts"}, {}};
        for (const auto& m : n.modules)
            t.rows.push_back({shown(m.module), shown(m.added), shown(m.modified), shown(m.deleted),
                              shown(m.conflicts)});
        doc.table = std::move(t);
    }
    doc.note = "No differences found.";
    return doc;
}

Document sync_finished(const Notification& n, bool succeeded)
{
    Document doc;
    doc.facts = {{"Comparison", numbered(n.comparison_id)},
                 {"Test import", yes_no(n.test_import)},
                 {"Scheduled by", shown(n.scheduled_by)},
                 {"Finished at", shown(n.finished_at)}};
    if (!succeeded) {
        doc.facts.emplace_back("Error", shown(n.error));
        if (n.detail) doc.facts.emplace_back("Detail", *n.detail);
        if (n.hint) doc.facts.emplace_back("Hint", *n.hint);
    }
    if (!n.modules.empty()) {
        Table t{{"Module", "Inserted", "Updated", "Deleted"}, {}};
        for (const auto& m : n.modules)
            t.rows.push_back({shown(m.module), shown(m.inserted), shown(m.updated), shown(m.deleted)});
        doc.table = std::move(t);
    }
    // A failed sync usually carries no module list; only say "nothing changed" when it did.
    if (n.has_modules) doc.note = "No records changed.";
    return doc;
}

}  // namespace

Rendered render(const Notification& notification)
{
    Document doc;
    if (notification.kind == "comparison_finished")
        doc = comparison_finished(notification);
    else if (notification.kind == "sync_succeeded")
        doc = sync_finished(notification, true);
    else if (notification.kind == "sync_failed")
        doc = sync_finished(notification, false);
    else
        throw std::invalid_argument(fmt::format("unsupported notification kind '{}'", notification.kind));
    // The words are envsync's (messages.sql): its heading, or else the subject, and its text.
    doc.title = notification.title && !notification.title->empty() ? *notification.title
                                                                    : shown(notification.subject);
    if (notification.text) doc.lead = *notification.text;
    return {text_body(doc), html_body(doc, mime::header_text(shown(notification.subject)))};
}

}  // namespace envsync
