#include "admin_api.h"

#include <cstring>
#include <optional>

#include <fmt/core.h>

#include "admin_assets.h"
#include "admin_http.h"
#include "log.h"

namespace envsync::admin {

namespace {

const char* const json_type = "application/json; charset=utf-8";

// A request refused before the database is asked, with what to tell the user.
class Refusal : public std::runtime_error {
public:
    Refusal(int status, const std::string& message, std::string hint = "")
        : std::runtime_error(message), status_(status), hint_(std::move(hint))
    {
    }
    int status() const { return status_; }
    json error() const { return report_json({"ERROR", "", what(), "", hint_}); }

private:
    int status_;
    std::string hint_;
};

// JSON text; a byte that is not UTF-8 (a server message before client_encoding took effect) is
// replaced rather than failing the answer.
std::string text_of(const json& value)
{
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

void send_error(httplib::Response& res, int status, const json& error)
{
    res.status = status;
    res.set_content(text_of(json{{"error", error}}), json_type);
}

// --- request bodies ------------------------------------------------------------------------

const json& field(const json& body, const char* name)
{
    static const json missing;
    const auto it = body.find(name);
    return it == body.end() ? missing : *it;
}

std::string text_field(const json& body, const char* name)
{
    const json& value = field(body, name);
    if (!value.is_string()) throw Refusal(400, fmt::format("the request lacks \"{}\"", name));
    return value.get<std::string>();
}

std::optional<std::string> optional_text(const json& body, const char* name)
{
    const json& value = field(body, name);
    if (value.is_null()) return std::nullopt;
    if (!value.is_string()) throw Refusal(400, fmt::format("\"{}\" must be text", name));
    return value.get<std::string>();
}

// An id (comparison, change, synchronization, message) as the text of a bigint parameter.
std::string id_field(const json& body, const char* name)
{
    const json& value = field(body, name);
    if (!value.is_number_integer() || value.get<long long>() < 1)
        throw Refusal(400, fmt::format("\"{}\" must be an id", name));
    return std::to_string(value.get<long long>());
}

bool bool_field(const json& body, const char* name)
{
    const json& value = field(body, name);
    if (value.is_null()) return false;
    if (!value.is_boolean()) throw Refusal(400, fmt::format("\"{}\" must be true or false", name));
    return value.get<bool>();
}

const char* sql_bool(bool value)
{
    return value ? "true" : "false";
}

// The first value of a one-value query: JSON text built by the server.
std::string value_of(const pg::Result& r)
{
    return r.rows() ? r.text(0, 0) : "null";
}

// --- the queries ---------------------------------------------------------------------------
// Rows of envsync's views are sent as they are (to_jsonb), so columns added to a view reach
// the page without a change here. Record values are sent as their text, never as JSON numbers
// a browser would round.

const char* const session_sql = R"(
SELECT jsonb_build_object('user', session_user, 'time_zone', current_setting('TimeZone'),
                          'unread', (SELECT count(*) FROM envsync.messages m WHERE NOT m.read)))";

const char* const setup_sql = R"(
SELECT jsonb_build_object(
    'environments', coalesce((SELECT jsonb_agg(jsonb_build_object('name', e.name, 'local', e.server IS NULL)
                                               ORDER BY e.server IS NOT NULL, e.name)
                                FROM envsync.environments e), '[]'),
    'modules', coalesce((SELECT jsonb_agg(m.module ORDER BY m.name)
                           FROM (SELECT st.module AS name,
                                        jsonb_build_object('module', st.module, 'requires', to_jsonb(st.module_requires),
                                                           'tables', jsonb_agg(st.table_name::text ORDER BY st.position),
                                                           'root', min(st.table_name::text) FILTER (WHERE st.is_root))
                                            AS module
                                   FROM envsync.synced_tables st
                                  GROUP BY st.module, st.module_requires) m), '[]')))";

const char* const scope_sql = R"(
SELECT coalesce(jsonb_agg(jsonb_build_object('key', c.key, 'record', c.record) ORDER BY c.n), '[]')
  FROM sync_scope_choices($1, $2) WITH ORDINALITY AS c (key, record_key, record, n))";

const char* const latest_sql = R"(
SELECT jsonb_build_object('id', max(c.id)) FROM envsync.comparisons c)";

// The changes of a comparison without their records, each with a name for the list: the first
// of these columns its record has.
const char* const review_sql = R"(
SELECT jsonb_build_object(
    'comparison', to_jsonb(c),
    'syncs', coalesce((SELECT jsonb_agg(to_jsonb(s) ORDER BY s.id) FROM envsync.syncs s WHERE s.comparison_id = c.id), '[]'),
    'changes', coalesce((
        SELECT jsonb_agg(to_jsonb(ch) - 'source_row' - 'target_row' || jsonb_build_object('label', (
                   SELECT left(v.value, 120) FROM jsonb_each_text(coalesce(ch.source_row, ch.target_row)) v
                    WHERE v.key IN ('title', 'name', 'label', 'file_name', 'path', 'slug', 'sku', 'caption')
                    ORDER BY array_position(ARRAY['title', 'name', 'label', 'file_name', 'path', 'slug', 'sku', 'caption'],
                                            v.key)
                    LIMIT 1))
                         ORDER BY ch.module, st.position, ch.record_key)
          FROM envsync.changes ch
          LEFT JOIN envsync.synced_tables st ON st.module = ch.module AND st.table_name = ch.table_name
         WHERE ch.comparison_id = c.id), '[]'))
  FROM envsync.comparisons c WHERE c.id = $1)";

// One record side by side: every column in the table's order, each value as text (JSON
// pretty-printed), the changed ones marked.
const char* const diff_sql = R"(
SELECT jsonb_build_object(
    'change', to_jsonb(ch) - 'source_row' - 'target_row',
    'source', c.source, 'target', c.target,
    'source_present', ch.source_row IS NOT NULL, 'target_present', ch.target_row IS NOT NULL,
    'cascades_text', CASE WHEN jsonb_typeof(to_jsonb(ch) -> 'cascades') IN ('object', 'array')
                          THEN jsonb_pretty(to_jsonb(ch) -> 'cascades') END,
    'columns', coalesce((
        SELECT jsonb_agg(jsonb_build_object('name', col.name,
                                            'changed', coalesce(col.name = ANY (ch.changed_columns), false),
                                            'source', shown.value -> 'source', 'target', shown.value -> 'target')
                         ORDER BY col.ord, col.name)
          FROM (SELECT a.attname::text AS name, a.attnum::integer AS ord
                  FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = ch.table_name AND a.attnum > 0 AND NOT a.attisdropped
                UNION
                SELECT k, 32767
                  FROM jsonb_object_keys(coalesce(ch.source_row, '{}') || coalesce(ch.target_row, '{}')) k
                 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                                    WHERE a.attrelid = ch.table_name AND a.attname = k AND NOT a.attisdropped)) col
         CROSS JOIN LATERAL (
               SELECT jsonb_object_agg(x.side, CASE
                          WHEN x.v IS NULL THEN NULL
                          WHEN jsonb_typeof(x.v) = 'null' THEN jsonb_build_object('type', 'null', 'text', 'NULL')
                          WHEN jsonb_typeof(x.v) IN ('object', 'array')
                               THEN jsonb_build_object('type', 'json', 'text',
                                                       CASE WHEN x.v IN ('{}', '[]') THEN x.v::text ELSE jsonb_pretty(x.v) END)
                          WHEN jsonb_typeof(x.v) = 'string' THEN jsonb_build_object('type', 'string', 'text', x.v #>> '{}')
                          ELSE jsonb_build_object('type', jsonb_typeof(x.v), 'text', x.v::text) END) AS value
                 FROM (VALUES ('source', ch.source_row -> col.name), ('target', ch.target_row -> col.name)) x (side, v)
         ) shown), '[]'))
  FROM envsync.changes ch JOIN envsync.comparisons c ON c.id = ch.comparison_id
 WHERE ch.change_id = $1)";

const char* const select_sql = R"(
SELECT sync_select($1::bigint, $2::boolean, (SELECT array_agg(x::bigint) FROM jsonb_array_elements_text($3::jsonb) x),
                   $4, $5))";

const char* const selection_sql = R"(
SELECT jsonb_build_object(
    'comparison', (SELECT to_jsonb(c) FROM envsync.comparisons c WHERE c.id = $1),
    'selected', coalesce((SELECT jsonb_object_agg(ch.change_id::text, ch.selected)
                            FROM envsync.changes ch WHERE ch.comparison_id = $1), '{}')))";

const char* const sync_sql = "SELECT to_jsonb(s) FROM envsync.syncs s WHERE s.id = $1";

const char* const messages_sql = R"(
SELECT coalesce(jsonb_agg(to_jsonb(m) || jsonb_build_object('sync', to_jsonb(s)) ORDER BY m.created_at DESC, m.id DESC), '[]')
  FROM envsync.messages m LEFT JOIN envsync.syncs s ON s.id = m.sync_id)";

const char* const history_sql = R"(
SELECT jsonb_build_object(
    'syncs', coalesce((SELECT jsonb_agg(to_jsonb(s) ORDER BY s.id DESC)
                         FROM (SELECT * FROM envsync.syncs ORDER BY id DESC LIMIT 200) s), '[]'),
    'comparisons', coalesce((SELECT jsonb_agg(to_jsonb(c) ORDER BY c.id DESC)
                               FROM (SELECT * FROM envsync.comparisons ORDER BY id DESC LIMIT 100) c), '[]')))";

// --- login ---------------------------------------------------------------------------------

// libpq's reason without its "connection to server at ... failed: FATAL:" preamble.
std::string server_reason(const std::string& what)
{
    const auto fatal = what.find("FATAL:");
    if (fatal == std::string::npos) return "";
    auto reason = what.substr(fatal + 6);
    reason.erase(0, reason.find_first_not_of(' '));
    return reason.substr(0, reason.find('\n'));
}

// A connection of the user's own, made ready: envsync's functions found first after
// pg_catalog, the user's time zone for the times shown.
std::unique_ptr<pg::Connection> open_for(const Config& config, const std::string& user, const std::string& password,
                                         const std::optional<std::string>& time_zone)
{
    std::unique_ptr<pg::Connection> db;
    try {
        // No password file: only what the user typed may log them in.
        db = std::make_unique<pg::Connection>(
            config.db, pg::Keywords{{"user", user}, {"password", password}, {"passfile", "/dev/null"}},
            "envsync-admin");
    } catch (const pg::Error& e) {
        const auto reason = server_reason(e.what());
        log::warning("login of {} refused: {}", user, reason.empty() ? e.what() : reason);
        if (reason.empty())
            throw Refusal(503, "PROD's database cannot be reached",
                          "Try again in a moment; if it persists, tell the database administrator.");
        throw Refusal(401, "Login refused: " + reason, "Check your user name and password.");
    }
    // Without a password check (trust, peer or certificate authentication) anybody could log in
    // as anybody here.
    if (!db->used_password()) {
        log::error("login of {} refused: the database accepted it without asking for the password", user);
        throw Refusal(403, "Login refused: the database did not check the password",
                      "The administrator must make PostgreSQL ask for passwords on the connections of envsync-admin "
                      "(pg_hba.conf: scram-sha-256).");
    }
    const auto member = db->exec("SELECT pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER') "
                                 "FROM pg_catalog.pg_roles r WHERE r.rolname = 'envsync_operator'");
    if (member.rows() == 0)
        throw Refusal(503, "envsync is not installed in this database", "Check the admin's --db setting.");
    if (member.text(0, 0) != "t") {
        log::warning("login of {} refused: not a member of envsync_operator", user);
        throw Refusal(403, fmt::format("Role \"{}\" may not synchronize: it is not a member of envsync_operator", user),
                      fmt::format("Ask the database administrator to GRANT envsync_operator TO \"{}\".", user));
    }
    db->exec(R"(SELECT pg_catalog.set_config('search_path', 'pg_catalog, ' || pg_catalog.quote_ident(n.nspname), false)
                  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                 WHERE e.extname = 'envsync')");
    // envsync's progress comes as NOTICEs, whatever the role's or the environment's (PGOPTIONS) setting.
    db->exec("SELECT pg_catalog.set_config('client_min_messages', 'notice', false)");
    if (db->exec("SELECT FROM envsync.environments e WHERE e.server IS NULL AND e.name = 'prod'").rows() == 0)
        throw Refusal(503, "This database is not PROD", "Synchronization is started only from PROD: check --db.");
    if (time_zone) {
        try {
            db->exec("SELECT set_config('TimeZone', $1, false)", {*time_zone});
        } catch (const pg::ServerError&) {
            // A zone PostgreSQL does not know: times are shown in the server's, with their offset.
        }
    }
    return db;
}

void wipe(std::string& secret)
{
    explicit_bzero(secret.data(), secret.size());
}

// --- routes --------------------------------------------------------------------------------

using Handler = std::function<std::string(Session&, const httplib::Request&, const json& body)>;

struct Routes {
    httplib::Server& server;
    const Config& config;
    SessionStore& sessions;

    std::optional<std::string> token(const httplib::Request& req) const
    {
        return http::cookie(req.get_header_value("Cookie"), http::cookie_name(config.tls()));
    }

    // The session of the request's cookie, or null with the refusal sent. A change needs the
    // session's CSRF token too.
    std::shared_ptr<Session> authorize(const httplib::Request& req, httplib::Response& res, bool change) const
    {
        const auto cookie = token(req);
        auto session = cookie ? sessions.find(*cookie) : nullptr;
        if (!session) {
            send_error(res, 401, report_json({"ERROR", "", "You are not logged in, or your session has expired", "",
                                              "Log in again."}));
        } else if (change && !http::same_token(req.get_header_value("X-CSRF-Token"), session->csrf())) {
            send_error(res, 403, report_json({"ERROR", "", "The request was refused: it carries no valid CSRF token", "",
                                              "Reload the page and try again."}));
            session.reset();
        }
        return session;
    }

    // Runs a handler in the request's session and answers with its JSON.
    void serve(const httplib::Request& req, httplib::Response& res, bool change, const Handler& handler) const
    {
        const auto session = authorize(req, res, change);
        if (!session) return;
        try {
            json body = json::object();
            if (change) {
                body = json::parse(req.body, nullptr, false);
                if (!body.is_object()) throw Refusal(400, "the request is not a JSON object");
            }
            res.set_content(handler(*session, req, body), json_type);
        } catch (const Refusal& e) {
            send_error(res, e.status(), e.error());
        } catch (const pg::ServerError& e) {
            // envsync's refusals, for the user to read (42501: not allowed); or the server ending
            // the session (57P01, ...).
            if (session->broken()) return lost(req, res, *session, e.what());
            send_error(res, e.report().sqlstate == "42501" ? 403 : 422, report_json(e.report()));
        } catch (const pg::Error& e) {
            if (!session->broken()) throw;
            lost(req, res, *session, e.what());
        }
    }

    // A session whose connection broke is over: the user logs in again.
    void lost(const httplib::Request& req, httplib::Response& res, Session& session, const std::string& why) const
    {
        log::warning("session of {} lost its connection: {}", session.user(), why);
        if (const auto cookie = token(req)) sessions.remove(*cookie);
        send_error(res, 503, report_json({"ERROR", "", "The connection to PROD's database was lost", why, "Log in again."}));
    }

    void get(const std::string& pattern, Handler handler) const
    {
        server.Get(pattern, [routes = *this, handler](const httplib::Request& req, httplib::Response& res) {
            routes.serve(req, res, false, handler);
        });
    }

    void post(const std::string& pattern, Handler handler) const
    {
        server.Post(pattern, [routes = *this, handler](const httplib::Request& req, httplib::Response& res) {
            routes.serve(req, res, true, handler);
        });
    }
};

// A one-value query of the request connection.
std::string query(Session& session, const char* sql, const std::vector<pg::Param>& params = {})
{
    return session.with_db([&](pg::Connection& db) { return value_of(db.exec(sql, params)); });
}

std::string started(Session& session, const std::string& kind, Session::Work work)
{
    if (session.broken()) throw pg::Error("the connection of the session's operations is closed");
    if (!session.start_job(kind, std::move(work)))
        throw Refusal(409, "Another operation of yours is still running", "Wait until it has finished.");
    return text_of(session.job());
}

json parsed(const pg::Result& r)
{
    return json::parse(value_of(r));
}

// A synchronization, test import or revert run now: its record and what it wrote per module.
json run_now(pg::Connection& db, const char* sql, const std::vector<pg::Param>& params)
{
    const auto modules = parsed(db.exec(sql, params));
    json sync = nullptr;
    if (!modules.empty()) {
        const auto& first = modules.front();
        const auto id = first.contains("sync_id") ? first["sync_id"] : first["revert_id"];
        sync = parsed(db.exec(sync_sql, {std::to_string(id.get<long long>())}));
    }
    return {{"modules", modules}, {"sync", sync}};
}

}  // namespace

void install_routes(httplib::Server& server, const Config& config, SessionStore& sessions)
{
    const bool tls = config.tls();
    httplib::Headers headers;
    for (const auto& [name, value] : http::security_headers(tls)) headers.emplace(name, value);
    server.set_default_headers(headers);

    // Before any route: a foreign Host, or a POST that is not JSON from the admin's own page.
    server.set_pre_routing_handler([tls](const httplib::Request& req, httplib::Response& res) {
        const auto host = req.get_header_value("Host");
        if (!http::host_allowed(host, tls)) {
            send_error(res, 421, report_json({"ERROR", "", "Unknown host name", "",
                                              "Open the admin at http://127.0.0.1 or http://localhost."}));
            return httplib::Server::HandlerResponse::Handled;
        }
        if (req.method == "POST") {
            if (!http::same_origin(req.get_header_value("Origin"), req.get_header_value("Sec-Fetch-Site"), host, tls)) {
                send_error(res, 403, report_json({"ERROR", "", "The request was refused: it does not come from this page",
                                                  "", "Use the admin's own page."}));
                return httplib::Server::HandlerResponse::Handled;
            }
            if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
                send_error(res, 415, report_json({"ERROR", "", "The request was refused: it is not JSON", "", ""}));
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    server.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            log::error("{} {}: {}", req.method, req.path, e.what());
        } catch (...) {
            log::error("{} {}: unknown exception", req.method, req.path);
        }
        send_error(res, 500, report_json({"ERROR", "", "The admin failed to answer this request", "",
                                          "It is in the admin's log; try again."}));
    });
    server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        if (res.status >= 400) log::info("{} {} {} from {}", req.method, req.path, res.status, req.remote_addr);
    });

    // The page: its files only.
    server.Get(R"(/|/[a-z]+\.(js|css|svg))", [](const httplib::Request& req, httplib::Response& res) {
        const Asset* asset = find_asset(req.path);
        if (!asset) {
            res.status = 404;
            return;
        }
        res.set_content(asset->body.data(), asset->body.size(), std::string(asset->content_type));
    });

    const Routes routes{server, config, sessions};

    server.Post("/api/login", [&config, &sessions, tls](const httplib::Request& req, httplib::Response& res) {
        json body = json::parse(req.body, nullptr, false);
        try {
            if (!body.is_object()) throw Refusal(400, "the request is not a JSON object");
            const auto user = text_field(body, "user");
            std::string password = text_field(body, "password");
            if (body["password"].is_string()) wipe(body["password"].get_ref<std::string&>());
            struct Wipe {
                std::string& secret;
                ~Wipe() { wipe(secret); }
            } wipe_password{password};
            if (user.empty() || user.size() > 63 || password.empty())
                throw Refusal(400, "Give your user name and password");
            auto time_zone = optional_text(body, "time_zone");
            if (time_zone && time_zone->size() > 64) time_zone.reset();
            auto db = open_for(config, user, password, time_zone);
            auto job_db = open_for(config, user, password, time_zone);
            const auto name = value_of(db->exec("SELECT session_user"));
            auto session = std::make_shared<Session>(name, std::move(db), std::move(job_db), Clock::now());
            const auto csrf = session->csrf();
            const auto token = sessions.add(std::move(session));
            log::info("{} logged in from {}", name, req.remote_addr);
            res.set_header("Set-Cookie", http::session_cookie(tls, token));
            res.set_content(text_of(json{{"user", name}, {"csrf", csrf}}), json_type);
        } catch (const Refusal& e) {
            send_error(res, e.status(), e.error());
        } catch (const SessionsFull& e) {
            send_error(res, 503, report_json({"ERROR", "", e.what(), "", ""}));
        } catch (const pg::Error& e) {
            log::warning("login failed: {}", e.what());
            send_error(res, 503, report_json({"ERROR", "", "PROD's database cannot be used", "", "Try again later."}));
        }
    });

    server.Post("/api/logout", [routes](const httplib::Request& req, httplib::Response& res) {
        if (const auto session = routes.authorize(req, res, true)) {
            log::info("{} logged out", session->user());
            routes.sessions.remove(*routes.token(req));
            res.set_header("Set-Cookie", http::expired_cookie(routes.config.tls()));
            res.set_content("{}", json_type);
        }
    });

    routes.get("/api/session", [](Session& session, const httplib::Request&, const json&) {
        auto answer = json::parse(query(session, session_sql));
        answer["csrf"] = session.csrf();
        return text_of(answer);
    });

    routes.get("/api/setup", [](Session& session, const httplib::Request&, const json&) {
        return query(session, setup_sql);
    });

    routes.get("/api/scope", [](Session& session, const httplib::Request& req, const json&) {
        if (!req.has_param("environment") || !req.has_param("module"))
            throw Refusal(400, "the request lacks the environment or the module");
        return query(session, scope_sql, {req.get_param_value("environment"), req.get_param_value("module")});
    });

    routes.post("/api/compare", [](Session& session, const httplib::Request&, const json& body) {
        const auto source = text_field(body, "source");
        const auto target = text_field(body, "target");
        const auto mode = text_field(body, "mode");
        const json& modules = field(body, "modules");
        if (!modules.is_array() || modules.empty())
            throw Refusal(400, "Choose at least one module to compare");
        for (const auto& m : modules) {
            if (!m.is_string()) throw Refusal(400, "\"modules\" must be a list of module names");
        }
        const json& scope = field(body, "scope");
        if (!scope.is_null() && !scope.is_object()) throw Refusal(400, "\"scope\" must be an object");
        const pg::Param scope_text = scope.is_null() ? pg::Param() : text_of(scope);
        return started(session, "compare", [=, modules_text = text_of(modules)](pg::Connection& db) {
            const auto id = value_of(db.exec(
                "SELECT sync_compare($1, $2, ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4, $5::jsonb)",
                {source, target, modules_text, mode, scope_text}));
            const auto comparison = parsed(db.exec("SELECT to_jsonb(c) FROM envsync.comparisons c WHERE c.id = $1", {id}));
            return json{{"comparison", comparison}, {"mail_to", comparison.value("mailed_to", json())}};
        });
    });

    routes.get("/api/job", [](Session& session, const httplib::Request&, const json&) {
        return text_of(session.job());
    });

    routes.get("/api/comparisons/latest", [](Session& session, const httplib::Request&, const json&) {
        return query(session, latest_sql);
    });

    routes.get(R"(/api/comparisons/(\d{1,18}))", [](Session& session, const httplib::Request& req, const json&) {
        auto answer = query(session, review_sql, {req.matches[1].str()});
        if (answer == "null") throw Refusal(404, fmt::format("Comparison {} does not exist", req.matches[1].str()));
        return answer;
    });

    routes.get(R"(/api/changes/(\d{1,18}))", [](Session& session, const httplib::Request& req, const json&) {
        auto answer = query(session, diff_sql, {req.matches[1].str()});
        if (answer == "null") throw Refusal(404, fmt::format("Change {} does not exist", req.matches[1].str()));
        return answer;
    });

    routes.post("/api/select", [](Session& session, const httplib::Request&, const json& body) {
        const auto comparison = id_field(body, "comparison_id");
        const json& flag = field(body, "selected");
        if (!flag.is_boolean()) throw Refusal(400, "\"selected\" must be true or false");
        const json& ids = field(body, "change_ids");
        pg::Param change_ids;
        if (!ids.is_null()) {
            // An empty list would mean every record to sync_select.
            if (!ids.is_array() || ids.empty()) throw Refusal(400, "\"change_ids\" must list records");
            for (const auto& id : ids) {
                if (!id.is_number_integer()) throw Refusal(400, "\"change_ids\" must list records");
            }
            change_ids = text_of(ids);
        }
        const auto module = optional_text(body, "module");
        const auto kind = optional_text(body, "kind");
        return session.with_db([&](pg::Connection& db) {
            db.exec(select_sql, {comparison, sql_bool(flag.get<bool>()), change_ids,
                                 module ? pg::Param(*module) : pg::Param(), kind ? pg::Param(*kind) : pg::Param()});
            return value_of(db.exec(selection_sql, {comparison}));
        });
    });

    // Schedule synchronization: at a time to come by pg_cron, or now (a time in this minute or
    // before) here, with its progress.
    routes.post("/api/run", [](Session& session, const httplib::Request&, const json& body) {
        const auto comparison = id_field(body, "comparison_id");
        const auto run_at = text_field(body, "run_at");
        const bool test_import = bool_field(body, "test_import");
        const bool now = session.with_db([&](pg::Connection& db) {
            return value_of(db.exec("SELECT $1::timestamptz < date_trunc('minute', now()) + interval '1 minute'", {run_at})) ==
                   "t";
        });
        if (now) {
            return started(session, test_import ? "test import" : "synchronization", [=](pg::Connection& db) {
                return run_now(db, "SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]') FROM sync_apply($1, $2) r",
                               {comparison, sql_bool(test_import)});
            });
        }
        return session.with_db([&](pg::Connection& db) {
            const auto id = value_of(db.exec("SELECT sync_schedule($1, $2::timestamptz, $3)", {comparison, run_at,
                                                                                             sql_bool(test_import)}));
            return text_of(json{{"scheduled", parsed(db.exec(sync_sql, {id}))}});
        });
    });

    routes.post("/api/cancel", [](Session& session, const httplib::Request&, const json& body) {
        const auto sync = id_field(body, "sync_id");
        return session.with_db([&](pg::Connection& db) {
            db.exec("SELECT sync_cancel($1)", {sync});
            return value_of(db.exec(sync_sql, {sync}));
        });
    });

    routes.post("/api/revert", [](Session& session, const httplib::Request&, const json& body) {
        const auto sync = id_field(body, "sync_id");
        return started(session, "revert", [=](pg::Connection& db) {
            return run_now(db, "SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]') FROM sync_revert($1) r", {sync});
        });
    });

    routes.get("/api/messages", [](Session& session, const httplib::Request&, const json&) {
        return query(session, messages_sql);
    });

    routes.post("/api/messages/read", [](Session& session, const httplib::Request&, const json& body) {
        const auto id = id_field(body, "id");
        const json& flag = field(body, "read");
        if (!flag.is_boolean()) throw Refusal(400, "\"read\" must be true or false");
        session.with_db([&](pg::Connection& db) {
            db.exec("UPDATE envsync.messages SET read = $2 WHERE id = $1", {id, sql_bool(flag.get<bool>())});
        });
        return std::string("{}");
    });

    routes.get("/api/history", [](Session& session, const httplib::Request&, const json&) {
        return query(session, history_sql);
    });

    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (res.status == 404 && res.body.empty() && req.path.rfind("/api/", 0) == 0)
            send_error(res, 404, report_json({"ERROR", "", "No such request", "", ""}));
    });
}

}  // namespace envsync::admin
