"""aiosmtpd handler for the orchestrator end-to-end test.

A Maildir like aiosmtpd.handlers.Mailbox, except that it
- refuses RCPT TO addresses ending in @invalid.test with 550, as a real server refuses an
  unknown mailbox, and
- takes two seconds over mail for slow@... recipients, so the test can stop the orchestrator
  while a message is in flight.
"""

import asyncio

from aiosmtpd.handlers import Mailbox


class RejectingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().endswith("@invalid.test"):
            return "550 5.1.1 <%s>: recipient address rejected: no such user" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(rcpt.lower().startswith("slow@") for rcpt in envelope.rcpt_tos):
            await asyncio.sleep(2)
        return await super().handle_DATA(server, session, envelope)
