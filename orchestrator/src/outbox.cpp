#include "outbox.h"

#include <cstdlib>

namespace envsync::outbox {

namespace {

// PostgreSQL flattens the jsonb payload, so no JSON parsing happens here. ->> yields NULL
// for missing keys and for payloads that are not objects.
constexpr const char* claim_sql = R"(
SELECT id, floor(extract(epoch FROM created_at))::bigint, recipient, attempts, kind, subject,
       payload->>'comparison_id', payload->>'sync_id', payload->>'source', payload->>'target',
       payload->>'mode', payload->>'started_by', payload->>'scheduled_by', payload->>'test_import',
       payload->>'finished_at', payload->>'error', payload->>'detail', payload->>'hint',
       coalesce(jsonb_typeof(payload->'modules') = 'array', false), payload->>'title', payload->>'text'
  FROM envsync.outbox
 WHERE status = 'pending' AND next_attempt_at <= least(now(), $1::timestamptz)
 ORDER BY next_attempt_at, id
 LIMIT 1
   FOR UPDATE SKIP LOCKED)";

// jsonb_array_elements rather than jsonb_to_recordset: an element that is not an object
// yields NULLs ("-") instead of an error that would block the mail.
constexpr const char* modules_sql = R"(
SELECT m->>'module', m->>'new', m->>'modified', m->>'deleted', m->>'conflicts',
       m->>'inserted', m->>'updated'
  FROM envsync.outbox AS o,
       jsonb_array_elements(CASE WHEN jsonb_typeof(o.payload->'modules') = 'array'
                                 THEN o.payload->'modules' END) WITH ORDINALITY AS e(m, n)
 WHERE o.id = $1
 ORDER BY e.n)";

constexpr const char* record_sql = R"(
UPDATE envsync.outbox
   SET status = $2, attempts = $3, last_error = $4,
       next_attempt_at = CASE WHEN $2 = 'pending' THEN now() + make_interval(secs => $5::double precision)
                              ELSE next_attempt_at END,
       sent_at = CASE WHEN $2 = 'sent' THEN now() END
 WHERE id = $1)";

}  // namespace

std::optional<Row> claim_next(pg::Connection& db, const std::string& cutoff)
{
    const pg::Result r = db.exec(claim_sql, {cutoff});
    if (r.rows() == 0) return std::nullopt;

    Row row;
    row.id = std::stoll(r.text(0, 0));
    row.created_epoch = std::stoll(r.text(0, 1));
    row.recipient = r.text(0, 2);
    row.attempts = std::stoi(r.text(0, 3));
    Notification& n = row.content;
    n.kind = r.text(0, 4);
    n.subject = r.text(0, 5);
    n.comparison_id = r.get(0, 6);
    n.sync_id = r.get(0, 7);
    n.source = r.get(0, 8);
    n.target = r.get(0, 9);
    n.mode = r.get(0, 10);
    n.started_by = r.get(0, 11);
    n.scheduled_by = r.get(0, 12);
    n.test_import = r.get(0, 13);
    n.finished_at = r.get(0, 14);
    n.error = r.get(0, 15);
    n.detail = r.get(0, 16);
    n.hint = r.get(0, 17);
    n.has_modules = r.text(0, 18) == "t";
    n.title = r.get(0, 19);
    n.text = r.get(0, 20);

    const pg::Result m = db.exec(modules_sql, {std::to_string(row.id)});
    for (int i = 0; i < m.rows(); ++i)
        n.modules.push_back({m.get(i, 0), m.get(i, 1), m.get(i, 2), m.get(i, 3), m.get(i, 4), m.get(i, 5),
                             m.get(i, 6)});
    return row;
}

void record(pg::Connection& db, std::int64_t id, const Disposition& outcome)
{
    db.exec(record_sql, {std::to_string(id), outcome.status, std::to_string(outcome.attempts),
                         outcome.error.empty() ? pg::Param() : outcome.error,
                         std::to_string(outcome.retry_in.count())});
}

std::optional<std::chrono::milliseconds> until_next_due(pg::Connection& db)
{
    const pg::Result r = db.exec(
        "SELECT extract(epoch FROM min(next_attempt_at) - clock_timestamp()) * 1000"
        "  FROM envsync.outbox WHERE status = 'pending'");
    const auto ms = r.get(0, 0);
    if (!ms) return std::nullopt;
    return std::chrono::milliseconds(static_cast<long long>(std::strtod(ms->c_str(), nullptr)));
}

}  // namespace envsync::outbox
