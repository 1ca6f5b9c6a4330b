#pragma once

#include <string>

#include "config.h"
#include "retry.h"

namespace envsync::smtp {

// curl_global_init/cleanup for the lifetime of main().
class CurlGlobal {
public:
    CurlGlobal();
    ~CurlGlobal();
    CurlGlobal(const CurlGlobal&) = delete;
    CurlGlobal& operator=(const CurlGlobal&) = delete;
};

// One SMTP transaction through libcurl. A 5xx reply to RCPT TO or DATA is Permanent (the
// server will never take this mail); everything else that fails is Transient.
SendResult send(const SmtpSettings& settings, const std::string& recipient, const std::string& message);

}  // namespace envsync::smtp
