#include "daemon.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"
#include "outbox.h"
#include "pg.h"
#include "smtp.h"

namespace envsync {

namespace {

volatile std::sig_atomic_t stop_requested = 0;
int stop_write_fd = -1;

extern "C" void on_stop_signal(int)
{
    const int saved_errno = errno;
    stop_requested = 1;
    const char byte = 1;
    [[maybe_unused]] const auto ignored = ::write(stop_write_fd, &byte, 1);
    errno = saved_errno;
}

// Waits until fd is readable, a stop is requested or the timeout passes.
void wait_readable(int fd, const StopSignal& stop, std::chrono::milliseconds timeout)
{
    pollfd fds[2] = {{stop.fd(), POLLIN, 0}, {fd, POLLIN, 0}};
    const int count = fd >= 0 ? 2 : 1;
    // EINTR just ends the wait early; callers re-check their state anyway.
    ::poll(fds, static_cast<nfds_t>(count), static_cast<int>(std::max<long long>(timeout.count(), 0)));
}

std::string plural(int n, const char* word)
{
    return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// Render and send one claimed row; never touches the database.
SendResult deliver(const Config& config, const outbox::Row& row)
{
    if (const auto problem = mime::address_problem(row.recipient))
        return {SendResult::Status::Permanent, "invalid recipient address: " + *problem};
    Rendered body;
    try {
        body = render(row.content);
    } catch (const std::invalid_argument& e) {
        return {SendResult::Status::Permanent, e.what()};
    }
    const mime::Message message{config.smtp.from,
                                row.recipient,
                                row.content.subject,
                                mime::date_header(static_cast<std::time_t>(row.created_epoch)),
                                mime::message_id(row.id, row.created_epoch, config.message_id_domain),
                                body.text,
                                body.html};
    return smtp::send(config.smtp, row.recipient, mime::compose(message));
}

void log_outcome(const outbox::Row& row, const Disposition& d)
{
    if (d.status == "sent")
        log::info("outbox {}: sent {} to {} ({})", row.id, row.content.kind, row.recipient,
                  plural(d.attempts, "attempt"));
    else if (d.status == "pending")
        log::warning("outbox {}: attempt {} failed, retrying in {} s: {}", row.id, d.attempts,
                     d.retry_in.count(), d.error);
    else
        log::error("outbox {}: failed after {}, giving up: {}", row.id, plural(d.attempts, "attempt"), d.error);
}

// One transaction: claim a due row, send it while holding its lock, record the outcome,
// commit. Returns false when nothing was due.
bool deliver_next(pg::Connection& db, const Config& config, const std::string& cutoff)
{
    pg::Transaction tx(db);
    const auto row = outbox::claim_next(db, cutoff);
    if (!row) {
        tx.commit();
        return false;
    }
    const Disposition outcome = dispose(row->attempts, deliver(config, *row), config.retry);
    try {
        outbox::record(db, row->id, outcome);
        tx.commit();
    } catch (const pg::Error&) {
        if (outcome.status == "sent")
            log::warning("outbox {}: the mail went out but could not be marked sent; it will be sent "
                         "again with the same Message-ID",
                         row->id);
        throw;
    }
    log_outcome(*row, outcome);
    return true;
}

// Serves one database connection until a stop is requested; throws pg::Error when it breaks.
// Resets `failures` once a full round has worked, so persistent errors keep backing off.
void serve(pg::Connection& db, const Config& config, const StopSignal& stop, int& failures)
{
    using namespace std::chrono_literals;
    db.exec("LISTEN envsync_outbox");
    log::info("connected to {}, listening on envsync_outbox", db.describe());
    while (!stop.requested()) {
        while (!stop.requested() && deliver_next(db, config, "infinity")) {
        }
        // Notifications that came in while we were busy may announce rows we have not seen.
        if (stop.requested() || db.take_notifications()) continue;
        // Wake for the next retry, but at least every poll interval in case a notification is
        // lost, and not more than once a second for a due row another orchestrator holds.
        const auto due = outbox::until_next_due(db);
        failures = 0;
        const auto wait = due ? std::clamp<std::chrono::milliseconds>(*due, 1s, config.poll_interval)
                              : std::chrono::milliseconds(config.poll_interval);
        wait_readable(db.socket(), stop, wait);
        db.consume_input();
    }
}

int run_once(const Config& config, const StopSignal& stop)
{
    try {
        pg::Connection db(config.db);
        // Rows rescheduled during this run are due after the cutoff: each is tried at most once.
        const std::string cutoff = db.exec("SELECT now()::text").text(0, 0);
        int handled = 0;
        while (!stop.requested() && deliver_next(db, config, cutoff)) ++handled;
        log::info("handled {}", plural(handled, "due mail"));
        return 0;
    } catch (const pg::Error& e) {
        log::error("{}", e.what());
        return 1;
    }
}

}  // namespace

StopSignal::StopSignal()
{
    int fds[2];
    if (stop_write_fd != -1) throw std::logic_error("only one StopSignal may exist");
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
    read_fd_ = fds[0];
    write_fd_ = stop_write_fd = fds[1];
    stop_requested = 0;  // a stop asked of an earlier instance is not one of this one
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
}

StopSignal::~StopSignal()
{
    std::signal(SIGTERM, SIG_DFL);
    std::signal(SIGINT, SIG_DFL);
    stop_write_fd = -1;
    ::close(read_fd_);
    ::close(write_fd_);
}

bool StopSignal::requested() const
{
    return stop_requested != 0;
}

void StopSignal::sleep(std::chrono::milliseconds duration) const
{
    wait_readable(-1, *this, duration);
}

int run(const Config& config, const StopSignal& stop)
{
    using namespace std::chrono_literals;
    log::info("delivering via {}{} as {}", redact_url(config.smtp.url),
              config.smtp.starttls ? " (STARTTLS required)" : "", config.smtp.from);
    if (config.smtp.allow_plaintext_auth && !config.smtp.starttls && config.smtp.url.rfind("smtp://", 0) == 0)
        log::warning("SMTP credentials go without TLS (--smtp-allow-plaintext-auth)");
    if (config.once) return run_once(config, stop);

    // Reconnect delays: 1 s, 2 s, 4 s ... at most a minute.
    const RetryPolicy reconnect{0, 1s, 60s};
    int failures = 0;
    while (!stop.requested()) {
        try {
            pg::Connection db(config.db);
            serve(db, config, stop, failures);
        } catch (const pg::Error& e) {
            const auto delay = retry_delay(++failures, reconnect);
            log::error("{}; reconnecting in {} s", e.what(), delay.count());
            stop.sleep(delay);
        }
    }
    log::info("stopped");
    return 0;
}

}  // namespace envsync
