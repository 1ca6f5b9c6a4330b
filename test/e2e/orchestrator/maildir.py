"""Reads the maildir aiosmtpd writes, for test/e2e/orchestrator_test.sh.

  maildir.py ids DIR              Message-ID of every message, one per line
  maildir.py show DIR MESSAGE-ID  JSON: headers, decoded subject, parts, HTML table cells
"""

import email
import email.header
import email.policy
import json
import mailbox
import sys
from html.parser import HTMLParser


class Cells(HTMLParser):
    """Collects table rows as lists of cell texts (entities decoded)."""

    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def messages(directory):
    for raw in mailbox.Maildir(directory, create=False):
        yield email.message_from_bytes(raw.as_bytes(), policy=email.policy.compat32)


def show(message):
    parts = [p for p in message.walk() if not p.is_multipart()]
    bodies = {p.get_content_type(): p.get_payload(decode=True).decode(p.get_content_charset()) for p in parts}
    parser = Cells()
    parser.feed(bodies.get("text/html", ""))
    raw_subject = message["Subject"]
    return {
        "content_type": message.get_content_type(),
        "part_types": [p.get_content_type() for p in parts],
        "part_charsets": [p.get_content_charset() for p in parts],
        "raw_subject": raw_subject,
        "subject": str(email.header.make_header(email.header.decode_header(raw_subject))),
        "to": message.get_all("To"),
        "from": message.get_all("From"),
        "bcc": message.get_all("Bcc"),
        "date": message["Date"],
        "message_id": message["Message-ID"],
        "header_names": list(message.keys()),
        "text": bodies.get("text/plain"),
        "html": bodies.get("text/html"),
        "cells": parser.rows,
    }


def main(argv):
    if argv[1] == "ids":
        for message in messages(argv[2]):
            print(message["Message-ID"])
    elif argv[1] == "show":
        found = [show(m) for m in messages(argv[2]) if m["Message-ID"] == argv[3]]
        print(json.dumps(found[0] if len(found) == 1 else {"error": "found %d" % len(found)}))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
