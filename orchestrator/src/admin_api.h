#pragma once

#include <httplib.h>

#include "admin_config.h"
#include "admin_session.h"

namespace envsync::admin {

// The page's files and its JSON API under /api/: login, the Synchronization, Changes review,
// Messages and History screens, and the operations started from them. Every statement runs in
// the user's own session, through envsync's public views and functions.
void install_routes(httplib::Server& server, const Config& config, SessionStore& sessions);

}  // namespace envsync::admin
