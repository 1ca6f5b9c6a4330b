#pragma once

#include <chrono>
#include <string>

namespace envsync {

struct RetryPolicy {
    int max_attempts = 8;
    std::chrono::seconds base{30};
    std::chrono::seconds cap{3600};
};

// Wait after the given number of failed attempts: base, 2*base, 4*base, ... at most cap.
std::chrono::seconds retry_delay(int failed_attempts, const RetryPolicy& policy);

struct SendResult {
    enum class Status { Sent, Transient, Permanent };
    Status status;
    std::string error;  // empty when sent
};

// What to write back to the outbox row after one delivery attempt.
struct Disposition {
    std::string status;  // "sent", "pending" or "failed"
    int attempts;
    std::chrono::seconds retry_in{0};  // only for "pending"
    std::string error;
};

Disposition dispose(int attempts_before, const SendResult& result, const RetryPolicy& policy);

}  // namespace envsync
