#include <set>

#include <gtest/gtest.h>

#include "admin_http.h"

namespace http = envsync::admin::http;

TEST(AdminHttp, TokensAreLongRandomAndDistinct)
{
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        const auto token = http::random_token();
        EXPECT_EQ(token.size(), 64u);
        EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos);
        seen.insert(token);
    }
    EXPECT_EQ(seen.size(), 100u);
}

TEST(AdminHttp, SameToken)
{
    const auto token = http::random_token();
    EXPECT_TRUE(http::same_token(token, token));
    EXPECT_FALSE(http::same_token(token, token.substr(1)));
    EXPECT_FALSE(http::same_token(token, std::string(token.size(), 'a')));
    EXPECT_FALSE(http::same_token("", ""));  // no token is never a match
}

TEST(AdminHttp, CookieHeader)
{
    EXPECT_EQ(http::cookie("a=1; envsync_session=abc; b=2", "envsync_session"), "abc");
    EXPECT_EQ(http::cookie("envsync_session=abc", "envsync_session"), "abc");
    EXPECT_EQ(http::cookie("xenvsync_session=abc; envsync_session_x=d", "envsync_session"), std::nullopt);
    EXPECT_EQ(http::cookie("", "envsync_session"), std::nullopt);
}

TEST(AdminHttp, SessionCookieIsHttpOnlyAndStrict)
{
    EXPECT_EQ(http::session_cookie(false, "t"), "envsync_session=t; Path=/; HttpOnly; SameSite=Strict");
    EXPECT_EQ(http::session_cookie(true, "t"), "__Host-envsync_session=t; Path=/; HttpOnly; SameSite=Strict; Secure");
    EXPECT_EQ(http::expired_cookie(false), "envsync_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
}

TEST(AdminHttp, HostsWithoutTlsAreLoopbackNames)
{
    EXPECT_TRUE(http::host_allowed("127.0.0.1:8080", false));
    EXPECT_TRUE(http::host_allowed("localhost:8080", false));
    EXPECT_TRUE(http::host_allowed("[::1]:8080", false));
    EXPECT_FALSE(http::host_allowed("attacker.example:8080", false));
    EXPECT_FALSE(http::host_allowed("127.0.0.1.attacker.example", false));
    EXPECT_FALSE(http::host_allowed("", false));
    EXPECT_TRUE(http::host_allowed("admin.shop.example", true));
}

TEST(AdminHttp, ChangesComeFromTheSameOrigin)
{
    EXPECT_TRUE(http::same_origin("http://127.0.0.1:8080", "same-origin", "127.0.0.1:8080", false));
    EXPECT_TRUE(http::same_origin("http://127.0.0.1:8080", "", "127.0.0.1:8080", false));
    EXPECT_FALSE(http::same_origin("http://attacker.example", "cross-site", "127.0.0.1:8080", false));
    EXPECT_FALSE(http::same_origin("http://127.0.0.1:8080", "cross-site", "127.0.0.1:8080", false));
    EXPECT_FALSE(http::same_origin("", "", "127.0.0.1:8080", false));
    EXPECT_FALSE(http::same_origin("http://admin.shop.example", "", "admin.shop.example", true));
    EXPECT_TRUE(http::same_origin("https://admin.shop.example", "same-origin", "admin.shop.example", true));
}

TEST(AdminHttp, NoInlineScript)
{
    bool csp = false;
    for (const auto& [name, value] : http::security_headers(false)) {
        if (name != "Content-Security-Policy") continue;
        csp = true;
        EXPECT_NE(value.find("script-src 'self'"), std::string::npos);
        EXPECT_EQ(value.find("unsafe-inline"), std::string::npos);
        EXPECT_NE(value.find("frame-ancestors 'none'"), std::string::npos);
    }
    EXPECT_TRUE(csp);
}
