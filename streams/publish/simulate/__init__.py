"""Synthetic partner data for demos, tests and benchmarks: people, events, extracts and truth.

    from streams.publish.simulate import Simulation, run, write_extracts

    sim = Simulation(seed=7, people=3000)          # deterministic for (seed, people, now)
    for partner, event_type, event in sim.events(100):
        ...                                        # plain dicts, ready for Publisher.publish
    sim.truth()                                    # one dict per person (see below)
    sim.write_truth(Path("truth.jsonl"))

    run(settings, rate=50, duration=60, simulation=sim, truth_path=Path("truth.jsonl"))
    write_extracts(sim, Path("extracts/"), events=1000)   # CSV / JSONL files for `sharebus publish`

The population (default 3000, mostly aged 10-30) lives in real Thames Valley postcode districts
(RG1, SL1, OX4, MK9, HP13, ...) with synthetic postcodes and LSOAs from `areas.csv`. Risk is
coherent: people with gang or exploitation factors are more often suspects, excluded, searched,
missing. The same people appear across partners with realistic variants (typos, swapped names,
spaced NHS numbers, lower-case postcodes, other date formats in extracts) and about 2% of
partner records carry an identifier with a wrong check digit. NHS numbers are in the 999 test
range. A few crime location descriptions name a person: free text must never leave the bus.

Truth rows: person_id, nhs_number, upn, pnc_id, given_name, family_name, date_of_birth (ISO),
gender, postcode, lsoa_code, local_ids {partner: id}, risk_tier, factors, looked_after,
variants [{partner, field, value, kind}] (kind: typo, swapped_names, punctuation, format,
format_in_extracts, invalid_check_digit), event_ids (events naming the person) and
anonymous_event_ids (ED attendances, which carry no identifiers by design).
"""

from streams.publish.simulate.core import Generated, Simulation
from streams.publish.simulate.geography import AREAS_CSV, Geography
from streams.publish.simulate.run import RunResult, run, write_extracts

__all__ = ["AREAS_CSV", "Generated", "Geography", "RunResult", "Simulation", "run", "write_extracts"]
