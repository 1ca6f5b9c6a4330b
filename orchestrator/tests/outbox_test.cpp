// outbox:: against envsync.outbox in a real database (ENVSYNC_UNIT_DB).
#include <gtest/gtest.h>

#include "outbox.h"
#include "support.h"

using envsync::Disposition;
using envsync::pg::Connection;
using envsync::pg::Transaction;
namespace outbox = envsync::outbox;

namespace {

class Outbox : public envsync::test::DatabaseTest {};

std::string or_null(const envsync::Value& v)
{
    return v ? *v : "NULL";
}

}  // namespace

TEST_F(Outbox, NothingPendingClaimsNothing)
{
    Transaction tx(*db_);
    EXPECT_FALSE(outbox::claim_next(*db_, "infinity"));
}

TEST_F(Outbox, ClaimReadsTheRowWithItsPayloadFlattened)
{
    const auto id = insert_mail("sync_failed", "ops@example.test", "Sync 3 failed", R"json({
        "sync_id": 3, "comparison_id": 12, "source": "test", "target": "prod", "mode": "all",
        "started_by": "alice", "scheduled_by": "bob", "test_import": false,
        "finished_at": "2026-11-24T17:05:00+00:00", "error": "duplicate key", "detail": "Key (id)=(1)",
        "hint": "Compare again.",
        "modules": [{"module": "cms", "inserted": 1, "updated": 2, "deleted": 0},
                    {"module": "catalogue", "new": 3, "modified": 4, "conflicts": 5}]})json");
    db_->exec("UPDATE envsync.outbox SET attempts = 2 WHERE id = $1", {std::to_string(id)});

    Transaction tx(*db_);
    const auto row = outbox::claim_next(*db_, "infinity");
    ASSERT_TRUE(row);
    EXPECT_EQ(row->id, id);
    EXPECT_EQ(std::to_string(row->created_epoch),
              value("SELECT floor(extract(epoch FROM created_at))::bigint FROM envsync.outbox WHERE id = $1",
                    {std::to_string(id)}));
    EXPECT_EQ(row->recipient, "ops@example.test");
    EXPECT_EQ(row->attempts, 2);
    const auto& n = row->content;
    EXPECT_EQ(n.kind, "sync_failed");
    EXPECT_EQ(n.subject, "Sync 3 failed");
    EXPECT_EQ(or_null(n.sync_id) + " " + or_null(n.comparison_id) + " " + or_null(n.source) + " "
                  + or_null(n.target) + " " + or_null(n.mode) + " " + or_null(n.started_by) + " "
                  + or_null(n.scheduled_by) + " " + or_null(n.test_import),
              "3 12 test prod all alice bob false");
    EXPECT_EQ(or_null(n.finished_at), "2026-11-24T17:05:00+00:00");
    EXPECT_EQ(or_null(n.error) + "|" + or_null(n.detail) + "|" + or_null(n.hint),
              "duplicate key|Key (id)=(1)|Compare again.");
    EXPECT_TRUE(n.has_modules);
    ASSERT_EQ(n.modules.size(), 2u);
    const auto& cms = n.modules[0];
    EXPECT_EQ(or_null(cms.module) + " " + or_null(cms.inserted) + " " + or_null(cms.updated) + " "
                  + or_null(cms.deleted) + " " + or_null(cms.added),
              "cms 1 2 0 NULL");
    const auto& catalogue = n.modules[1];
    EXPECT_EQ(or_null(catalogue.module) + " " + or_null(catalogue.added) + " " + or_null(catalogue.modified) + " "
                  + or_null(catalogue.conflicts) + " " + or_null(catalogue.deleted),
              "catalogue 3 4 5 NULL");
}

TEST_F(Outbox, OddPayloadsGiveMissingValuesNotErrors)
{
    const auto scalar = insert_mail("comparison_finished", "a@example.test", "Scalar", "42");
    const auto odd_modules =
        insert_mail("comparison_finished", "b@example.test", "Odd modules", R"({"modules": [7, {"module": "cms"}]})");
    const auto no_modules = insert_mail("comparison_finished", "c@example.test", "No modules", R"({"modules": {}})");

    Transaction tx(*db_);
    auto row = outbox::claim_next(*db_, "infinity");
    ASSERT_TRUE(row);
    EXPECT_EQ(row->id, scalar);
    EXPECT_FALSE(row->content.comparison_id);
    EXPECT_FALSE(row->content.has_modules);
    EXPECT_TRUE(row->content.modules.empty());
    db_->exec("UPDATE envsync.outbox SET status = 'sent' WHERE id = $1", {std::to_string(scalar)});

    row = outbox::claim_next(*db_, "infinity");
    ASSERT_TRUE(row);
    EXPECT_EQ(row->id, odd_modules);
    EXPECT_TRUE(row->content.has_modules);
    ASSERT_EQ(row->content.modules.size(), 2u);
    EXPECT_FALSE(row->content.modules[0].module) << "an element that is no object has no values";
    EXPECT_EQ(or_null(row->content.modules[1].module), "cms");
    db_->exec("UPDATE envsync.outbox SET status = 'sent' WHERE id = $1", {std::to_string(odd_modules)});

    row = outbox::claim_next(*db_, "infinity");
    ASSERT_TRUE(row);
    EXPECT_EQ(row->id, no_modules);
    EXPECT_FALSE(row->content.has_modules) << "modules that are no array";
}

TEST_F(Outbox, OnlyPendingRowsDueAtTheCutoffAreClaimedEarliestFirst)
{
    const auto later = insert_mail("comparison_finished", "a@example.test", "Due later");
    const auto sent = insert_mail("comparison_finished", "b@example.test", "Sent");
    const auto failed = insert_mail("comparison_finished", "c@example.test", "Failed");
    const auto first = insert_mail("comparison_finished", "d@example.test", "Due first");
    const auto second = insert_mail("comparison_finished", "e@example.test", "Due second");
    db_->exec("UPDATE envsync.outbox SET next_attempt_at = now() + interval '1 hour' WHERE id = $1",
              {std::to_string(later)});
    db_->exec("UPDATE envsync.outbox SET status = 'sent' WHERE id = $1", {std::to_string(sent)});
    db_->exec("UPDATE envsync.outbox SET status = 'failed' WHERE id = $1", {std::to_string(failed)});
    db_->exec("UPDATE envsync.outbox SET next_attempt_at = now() - interval '1 minute' WHERE id = $1",
              {std::to_string(first)});
    db_->exec("UPDATE envsync.outbox SET next_attempt_at = now() - interval '1 second' WHERE id = $1",
              {std::to_string(second)});

    Transaction tx(*db_);
    EXPECT_FALSE(outbox::claim_next(*db_, value("SELECT (now() - interval '10 minutes')::text")))
        << "nothing was due ten minutes ago";
    auto row = outbox::claim_next(*db_, value("SELECT (now() - interval '30 seconds')::text"));
    ASSERT_TRUE(row);
    EXPECT_EQ(row->id, first);
    db_->exec("UPDATE envsync.outbox SET status = 'sent' WHERE id = $1", {std::to_string(first)});
    row = outbox::claim_next(*db_, "infinity");
    ASSERT_TRUE(row);
    EXPECT_EQ(row->id, second);
    db_->exec("UPDATE envsync.outbox SET status = 'sent' WHERE id = $1", {std::to_string(second)});
    EXPECT_FALSE(outbox::claim_next(*db_, "infinity")) << "not the row due in an hour, nor sent or failed ones";
}

TEST_F(Outbox, ConcurrentClaimsTakeDifferentRows)
{
    const auto one = insert_mail("comparison_finished", "a@example.test", "One");
    const auto two = insert_mail("comparison_finished", "b@example.test", "Two");
    Connection a(conninfo_), b(conninfo_), c(conninfo_);
    Transaction ta(a), tb(b), tc(c);
    const auto row_a = outbox::claim_next(a, "infinity");
    const auto row_b = outbox::claim_next(b, "infinity");
    ASSERT_TRUE(row_a);
    ASSERT_TRUE(row_b);
    EXPECT_EQ(row_a->id, one);
    EXPECT_EQ(row_b->id, two) << "the row locked by the first session is skipped, not waited for";
    EXPECT_FALSE(outbox::claim_next(c, "infinity")) << "both rows are taken";
}

TEST_F(Outbox, RecordSent)
{
    const auto id = insert_mail("comparison_finished", "a@example.test", "Sent");
    const std::string due = value("SELECT next_attempt_at::text FROM envsync.outbox WHERE id = $1", {std::to_string(id)});
    outbox::record(*db_, id, Disposition{"sent", 3, std::chrono::seconds(0), ""});
    EXPECT_EQ(value("SELECT status || '|' || attempts || '|' || coalesce(last_error, 'NULL') || '|'"
                    "       || (sent_at > now() - interval '1 minute') || '|' || next_attempt_at"
                    "  FROM envsync.outbox WHERE id = $1",
                    {std::to_string(id)}),
              "sent|3|NULL|true|" + due);
}

TEST_F(Outbox, RecordRetryLater)
{
    const auto id = insert_mail("comparison_finished", "a@example.test", "Retry");
    Transaction tx(*db_);  // now() is the transaction's start, as in the daemon
    outbox::record(*db_, id, Disposition{"pending", 1, std::chrono::seconds(90), "Failed to connect"});
    EXPECT_EQ(value("SELECT status || '|' || attempts || '|' || last_error || '|' || (sent_at IS NULL) || '|'"
                    "       || (next_attempt_at - now())"
                    "  FROM envsync.outbox WHERE id = $1",
                    {std::to_string(id)}),
              "pending|1|Failed to connect|true|00:01:30");
}

TEST_F(Outbox, RecordFailedKeepsTheLastSchedule)
{
    const auto id = insert_mail("comparison_finished", "a@example.test", "Failed");
    const std::string due = value("SELECT next_attempt_at::text FROM envsync.outbox WHERE id = $1", {std::to_string(id)});
    outbox::record(*db_, id, Disposition{"failed", 8, std::chrono::seconds(0), "RCPT refused: 550 no such user"});
    EXPECT_EQ(value("SELECT status || '|' || attempts || '|' || last_error || '|' || (sent_at IS NULL) || '|'"
                    "       || next_attempt_at FROM envsync.outbox WHERE id = $1",
                    {std::to_string(id)}),
              "failed|8|RCPT refused: 550 no such user|true|" + due);
}

TEST_F(Outbox, UntilNextDue)
{
    EXPECT_FALSE(outbox::until_next_due(*db_)) << "empty outbox";
    const auto sent = insert_mail("comparison_finished", "a@example.test", "Sent");
    db_->exec("UPDATE envsync.outbox SET status = 'sent' WHERE id = $1", {std::to_string(sent)});
    EXPECT_FALSE(outbox::until_next_due(*db_)) << "nothing pending";

    const auto later = insert_mail("comparison_finished", "b@example.test", "Later");
    db_->exec("UPDATE envsync.outbox SET next_attempt_at = now() + interval '1 hour' WHERE id = $1",
              {std::to_string(later)});
    auto due = outbox::until_next_due(*db_);
    ASSERT_TRUE(due);
    EXPECT_GT(due->count(), 3540 * 1000);
    EXPECT_LE(due->count(), 3600 * 1000);

    const auto overdue = insert_mail("comparison_finished", "c@example.test", "Overdue");
    db_->exec("UPDATE envsync.outbox SET next_attempt_at = now() - interval '5 minutes' WHERE id = $1",
              {std::to_string(overdue)});
    due = outbox::until_next_due(*db_);
    ASSERT_TRUE(due);
    EXPECT_LE(due->count(), -300 * 1000) << "the earliest pending row counts, overdue is negative";
}
