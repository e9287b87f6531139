"""Leak scanning: does anything that must never leave the bus appear where recipients can see it?

Build `Secrets` from what partners published (a simulation's truth file, the published events) and
scan what leaves the bus with a `LeakScanner`: shared and view topics (`scan_topics`), HTTP answers,
log files. Matching is by *meaning*, not by exact bytes, so a reformatted value is still caught:

- identifiers (NHS number, UPN, PNC ID, local ids): NHS numbers with or without spaces or dashes,
  the others case-insensitively as whole words;
- full postcodes with or without the space, in any case (an outward code or district alone is not
  personal and is not reported);
- dates of birth in any common format: ISO, day/month/year and month/day/year with `/`, `-` or `.`,
  two-digit years, `yyyymmdd`, `14 March 2008`, `14th Mar 2008`, `March 14, 2008`;
- names: a given name next to a family name (either order, any case, punctuation between), and any
  single string value that *is* a given or family name;
- free text (e.g. a location description naming someone), case-insensitively as a substring;
- exact coordinates (four or more decimals; a coordinate rounded to 3 decimals is not reported).

Tokens (`k1.xxxx`, `p.xxxx`) never match: every pattern requires a boundary that a base32 token
cannot provide. Reported leaks are masked (`Leak.secret` keeps two characters), so a report can be
logged or attached to a CI run without leaking in turn.

    secrets = Secrets.from_truth(sim.truth(), events=published_records, catalogue=catalogue)
    scanner = LeakScanner(secrets)
    report = scan_topics(settings.kafka_config(), scanner, ("shared.", "views."), registry)
    assert not report.leaks, report.summary()
"""

from __future__ import annotations

from streams.privacy.leakscan.patterns import mask
from streams.privacy.leakscan.scanner import Leak, LeakScanner
from streams.privacy.leakscan.topics import ScanReport, scan_topics
from streams.privacy.leakscan.truth import Secrets

__all__ = ["Leak", "LeakScanner", "ScanReport", "Secrets", "mask", "scan_topics"]
