#include "retry.h"

#include <algorithm>

namespace envsync {

std::chrono::seconds retry_delay(int failed_attempts, const RetryPolicy& policy)
{
    std::chrono::seconds delay = policy.base;
    // Stop doubling once the cap is reached, so large attempt counts cannot overflow.
    for (int i = 1; i < failed_attempts && delay < policy.cap; ++i) delay *= 2;
    return std::min(delay, policy.cap);
}

Disposition dispose(int attempts_before, const SendResult& result, const RetryPolicy& policy)
{
    const int attempts = attempts_before + 1;
    switch (result.status) {
    case SendResult::Status::Sent:
        return {"sent", attempts, {}, {}};
    case SendResult::Status::Transient:
        if (attempts < policy.max_attempts)
            return {"pending", attempts, retry_delay(attempts, policy), result.error};
        break;
    case SendResult::Status::Permanent:
        break;
    }
    return {"failed", attempts, {}, result.error};
}

}  // namespace envsync
