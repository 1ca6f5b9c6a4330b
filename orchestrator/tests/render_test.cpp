#include <stdexcept>

#include <gtest/gtest.h>

#include "render.h"

using envsync::Notification;
using envsync::render;

namespace {

bool contains(const std::string& haystack, const std::string& needle)
{
    return haystack.find(needle) != std::string::npos;
}

Notification comparison()
{
    Notification n;
    n.kind = "comparison_finished";
    n.subject = "Comparison 12 finished: TEST > PROD";
    n.title = "Comparison 12 finished: TEST > PROD";
    n.comparison_id = "12";
    n.source = "test";
    n.target = "prod";
    n.mode = "all";
    n.started_by = "alice";
    n.finished_at = "2026-11-24T17:00:00+00:00";
    n.has_modules = true;
    n.modules = {{"cms", "1", "2", "0", "1", {}, {}}, {"catalog", "13", "0", "5", "0", {}, {}}};
    return n;
}

Notification sync(const char* kind)
{
    Notification n;
    n.kind = kind;
    n.subject = "Success: Synchronization process TEST > PROD";
    n.sync_id = "3";
    n.comparison_id = "12";
    n.source = "test";
    n.target = "prod";
    n.test_import = "false";
    n.scheduled_by = "alice";
    n.finished_at = "2026-11-24T17:05:00+00:00";
    return n;
}

}  // namespace

TEST(Render, ComparisonAsTextTable)
{
    const auto r = render(comparison());
    EXPECT_EQ(r.text,
              "Comparison 12 finished: TEST > PROD\n"
              "===================================\n"
              "\n"
              "Mode:         all\n"
              "Started by:   alice\n"
              "Finished at:  2026-11-24T17:00:00+00:00\n"
              "\n"
              "Module   New  Modified  Deleted  Conflicts\n"
              "-------  ---  --------  -------  ---------\n"
              "cms        1         2        0          1\n"
              "catalog   13         0        5          0\n");
}

TEST(Render, ComparisonAsHtmlTable)
{
    const auto html = render(comparison()).html;
    EXPECT_TRUE(contains(html, "<meta charset=\"utf-8\">"));
    EXPECT_TRUE(contains(html, "<h2>Comparison 12 finished: TEST &gt; PROD</h2>"));
    EXPECT_TRUE(contains(html, ">Module</th>"));
    EXPECT_TRUE(contains(html, ">Conflicts</th>"));
    EXPECT_TRUE(contains(html, ">catalog</td>"));
    EXPECT_TRUE(contains(html, ">13</td>"));
}

TEST(Render, ComparisonWithoutDifferences)
{
    auto n = comparison();
    n.modules.clear();
    const auto r = render(n);
    EXPECT_TRUE(contains(r.text, "\nNo differences found.\n"));
    EXPECT_TRUE(contains(r.html, "<p>No differences found.</p>"));
    EXPECT_FALSE(contains(r.html, "Module"));
}

TEST(Render, MissingValuesShowAsDash)
{
    Notification n;
    n.kind = "comparison_finished";
    n.modules = {{"cms", {}, "", {}, {}, {}, {}}};
    const auto r = render(n);
    EXPECT_TRUE(contains(r.text, "-\n=\n")) << "no heading, no subject";
    EXPECT_TRUE(contains(r.text, "Mode:         -\n"));
    EXPECT_TRUE(contains(r.text, "cms       -         -        -          -\n"));
}

TEST(Render, SyncSucceededWithCounts)
{
    auto n = sync("sync_succeeded");
    n.has_modules = true;
    n.modules = {{"cms", {}, {}, "0", {}, "1", "2"}};
    const auto r = render(n);
    EXPECT_TRUE(contains(r.text, "Success: Synchronization process TEST > PROD\n")) << "the subject, without a heading";
    EXPECT_TRUE(contains(r.text, "Test import:   no\n"));
    EXPECT_TRUE(contains(r.text, "Module  Inserted  Updated  Deleted\n"));
    EXPECT_TRUE(contains(r.text, "cms            1        2        0\n"));
    EXPECT_FALSE(contains(r.text, "Error"));
}

TEST(Render, EnvsyncsOwnTitleAndTextLead)
{
    auto n = sync("sync_succeeded");
    n.title = "Success: Synchronization process";
    n.text = "Synchronization 3 of TEST > PROD finished on 2026-12-01 22:00. <b>applied</b>";
    const auto r = render(n);
    EXPECT_TRUE(contains(r.text, "Success: Synchronization process\n================================\n\n"
                                 "Synchronization 3 of TEST > PROD finished on 2026-12-01 22:00. <b>applied</b>\n\n"));
    EXPECT_FALSE(contains(r.text, "Success: Synchronization process TEST > PROD")) << "the heading, not the subject";
    EXPECT_TRUE(contains(r.html, "<h2>Success: Synchronization process</h2>\n<p>Synchronization 3 of TEST &gt; PROD"
                                 " finished on 2026-12-01 22:00. &lt;b&gt;applied&lt;/b&gt;</p>\n<table>"));
    EXPECT_TRUE(contains(r.text, "Test import:   no\n")) << "the facts follow";
}

TEST(Render, SyncSucceededWithNothingToDo)
{
    auto n = sync("sync_succeeded");
    n.test_import = "true";
    n.has_modules = true;
    const auto r = render(n);
    EXPECT_TRUE(contains(r.text, "Test import:   yes\n"));
    EXPECT_TRUE(contains(r.text, "No records changed."));
}

TEST(Render, SyncFailedShowsTheError)
{
    auto n = sync("sync_failed");
    n.error = "duplicate key value violates unique constraint \"cms_page_pkey\"";
    n.detail = "Key (id)=(7) already exists.\nSecond line.";
    n.hint = "Compare again.";
    const auto r = render(n);
    EXPECT_TRUE(contains(r.text, "Success: Synchronization process TEST > PROD\n")) << "the subject, without a heading";
    EXPECT_TRUE(contains(r.text, "Error:         duplicate key value violates unique constraint \"cms_page_pkey\"\n"));
    EXPECT_TRUE(contains(r.text, "Detail:        Key (id)=(7) already exists.\n               Second line.\n"));
    EXPECT_TRUE(contains(r.text, "Hint:          Compare again.\n"));
    EXPECT_FALSE(contains(r.text, "Module")) << "no module list in the payload";
    EXPECT_FALSE(contains(r.text, "No records changed.")) << "unknown, not zero";
    EXPECT_TRUE(contains(r.html, "&quot;cms_page_pkey&quot;"));
}

TEST(Render, HostileValuesAreEscapedInHtml)
{
    auto n = sync("sync_failed");
    n.subject = "</title><script>alert(1)</script>";
    n.title = "<b>test</b>";
    n.text = "<i>lead</i>";
    n.scheduled_by = "\"Bob\" & 'Eve'";
    n.error = "<script>alert('x')</script>";
    n.has_modules = true;
    n.modules = {{"<img src=x onerror=alert(1)>", {}, {}, "0", {}, "&lt;", "1"}};
    const auto html = render(n).html;
    EXPECT_FALSE(contains(html, "<script"));
    EXPECT_FALSE(contains(html, "<img"));
    EXPECT_FALSE(contains(html, "<b>"));
    EXPECT_FALSE(contains(html, "<i>"));
    EXPECT_TRUE(contains(html, "<title>&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>"));
    EXPECT_TRUE(contains(html, "<h2>&lt;b&gt;test&lt;/b&gt;</h2>"));
    EXPECT_TRUE(contains(html, "<p>&lt;i&gt;lead&lt;/i&gt;</p>"));
    EXPECT_TRUE(contains(html, "&quot;Bob&quot; &amp; &#39;Eve&#39;"));
    EXPECT_TRUE(contains(html, "&lt;img src=x onerror=alert(1)&gt;"));
    EXPECT_TRUE(contains(html, ">&amp;lt;</td>"));
}

TEST(Render, UnknownKindIsRefused)
{
    auto n = comparison();
    n.kind = "newsletter";
    EXPECT_THROW(render(n), std::invalid_argument);
}
