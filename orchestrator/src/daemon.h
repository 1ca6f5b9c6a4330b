#pragma once

#include <chrono>

#include "config.h"

namespace envsync {

// Turns SIGTERM and SIGINT into a flag plus a readable pipe, so a poll() that waits for
// PostgreSQL wakes up at once. Only one instance may exist.
class StopSignal {
public:
    StopSignal();
    ~StopSignal();
    StopSignal(const StopSignal&) = delete;
    StopSignal& operator=(const StopSignal&) = delete;

    bool requested() const;
    int fd() const { return read_fd_; }
    // Sleeps, returning early when a stop is requested.
    void sleep(std::chrono::milliseconds duration) const;

private:
    int read_fd_ = -1;
    int write_fd_ = -1;
};

// Delivers mail until stopped (or, with --once, until nothing is due). Returns the exit code.
int run(const Config& config, const StopSignal& stop);

}  // namespace envsync
