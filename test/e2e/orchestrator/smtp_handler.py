"""aiosmtpd handler for the orchestrator's tests (end-to-end and unit).

A Maildir like aiosmtpd.handlers.Mailbox, except that it answers some recipients the way a
real server answers in trouble:
- ...@invalid.test: RCPT TO refused with 550, as for an unknown mailbox;
- ...@busy.test: RCPT TO refused with 451, a temporary failure;
- refuse-data@...: the message refused with 554 after DATA;
- held@...: the message is received, then the reply to DATA is held back until the test lets
  it go. With ENVSYNC_SMTP_HOLD_DIR set, the handler writes the message's Message-ID into
  HOLD_DIR/held once the message is in, and replies (and stores it) only when HOLD_DIR/release
  exists, so a test knows the mail is in flight while it acts. Without it, or after 60 s, the
  reply is 451.
"""

import asyncio
import email
import email.policy
import os
import time

from aiosmtpd.handlers import Mailbox

HOLD_LIMIT = 60  # seconds; a test that never releases must not hang the client forever


class RejectingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.lower().rpartition("@")[2]
        if domain == "invalid.test":
            return "550 5.1.1 <%s>: recipient address rejected: no such user" % address
        if domain == "busy.test":
            return "451 4.2.1 <%s>: mailbox busy, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        local_parts = [rcpt.lower().partition("@")[0] for rcpt in envelope.rcpt_tos]
        if "refuse-data" in local_parts:
            return "554 5.6.0 message refused by content filter"
        if "held" in local_parts and not await self.hold(envelope):
            return "451 4.4.2 held too long"
        return await super().handle_DATA(server, session, envelope)

    async def hold(self, envelope):
        directory = os.environ.get("ENVSYNC_SMTP_HOLD_DIR")
        if not directory:
            return False
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.compat32)
        held = os.path.join(directory, "held")
        with open(held + ".tmp", "w") as marker:
            marker.write(str(message["Message-ID"]) + "\n")
        os.rename(held + ".tmp", held)  # appears complete or not at all
        deadline = time.monotonic() + HOLD_LIMIT
        while not os.path.exists(os.path.join(directory, "release")):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True
