"""Retention: the bus keeps an event while any person-level agreement of its controller may."""

from __future__ import annotations

from streams.agreements import load_agreements
from streams.avro.catalogue import load_catalogue
from streams.rights.retention import retention_days
from streams.settings import ROOT


def test_each_controller_gets_its_longest_agreement_and_the_rest_the_longest_of_all() -> None:
    catalogue = load_catalogue()
    agreements = load_agreements(ROOT / "agreements", catalogue)
    days = retention_days(agreements, catalogue)
    assert days["reading_schools"] == 365  # education-to-reading-yjs
    assert days["thames_valley_police"] == 730
    assert days["probation_thames_valley"] == 1095
    # the public feed (3650 days) shares suppressed counts only: it keeps no identifier alive
    assert max(days.values()) == 1095
    assert days["reading_housing"] == 1095  # no person-level agreement: the longest of them all
    assert set(days) == set(catalogue.partners)
