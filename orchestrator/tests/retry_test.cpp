#include <gtest/gtest.h>

#include "retry.h"

using envsync::dispose;
using envsync::retry_delay;
using envsync::RetryPolicy;
using envsync::SendResult;
using std::chrono::seconds;

TEST(Retry, DelayDoublesFromBaseUpToCap)
{
    const RetryPolicy policy{8, seconds(30), seconds(600)};
    EXPECT_EQ(retry_delay(1, policy), seconds(30));
    EXPECT_EQ(retry_delay(2, policy), seconds(60));
    EXPECT_EQ(retry_delay(3, policy), seconds(120));
    EXPECT_EQ(retry_delay(4, policy), seconds(240));
    EXPECT_EQ(retry_delay(5, policy), seconds(480));
    EXPECT_EQ(retry_delay(6, policy), seconds(600));
    EXPECT_EQ(retry_delay(1000000, policy), seconds(600)) << "no overflow for huge attempt counts";
}

TEST(Retry, SentRecordsTheAttempt)
{
    const auto d = dispose(2, {SendResult::Status::Sent, ""}, RetryPolicy{});
    EXPECT_EQ(d.status, "sent");
    EXPECT_EQ(d.attempts, 3);
    EXPECT_EQ(d.error, "");
}

TEST(Retry, TransientFailureIsRetriedUntilTheLimit)
{
    const RetryPolicy policy{3, seconds(10), seconds(3600)};
    const SendResult down{SendResult::Status::Transient, "Couldn't connect to server"};

    auto d = dispose(0, down, policy);
    EXPECT_EQ(d.status, "pending");
    EXPECT_EQ(d.attempts, 1);
    EXPECT_EQ(d.retry_in, seconds(10));
    EXPECT_EQ(d.error, "Couldn't connect to server");

    d = dispose(1, down, policy);
    EXPECT_EQ(d.status, "pending");
    EXPECT_EQ(d.retry_in, seconds(20));

    d = dispose(2, down, policy);
    EXPECT_EQ(d.status, "failed");
    EXPECT_EQ(d.attempts, 3);
    EXPECT_EQ(d.error, "Couldn't connect to server");
}

TEST(Retry, PermanentFailureFailsAtOnce)
{
    const auto d = dispose(0, {SendResult::Status::Permanent, "RCPT refused: 550 no such user"}, RetryPolicy{});
    EXPECT_EQ(d.status, "failed");
    EXPECT_EQ(d.attempts, 1);
    EXPECT_EQ(d.error, "RCPT refused: 550 no such user");
}
