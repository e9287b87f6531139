"""Avro schema-resolution rules behind the registry's compatibility levels (pure, no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.registry.avro import InvalidSchema, canonical_key, parse_avro
from streams.registry.compat import CompatibilityLevel, check_compatibility, check_resolution


def schema(doc: Any) -> Any:
    return parse_avro(json.dumps(doc))


def record(name: str, *fields: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **attrs}


def f(name: str, type_: Any, **attrs: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **attrs}


def problems(reader: Any, writer: Any) -> list[str]:
    return [str(i) for i in check_resolution(schema(reader), schema(writer))]


def rules(reader: Any, writer: Any) -> list[tuple[str, str]]:
    return [(i.rule, i.path) for i in check_resolution(schema(reader), schema(writer))]


def person(*extra: dict[str, Any]) -> dict[str, Any]:
    return record(
        "Subject",
        f("nhs_number", ["null", "string"], default=None, pii="direct"),
        f("given_name", "string", pii="direct"),
        *extra,
        namespace="sharingbus",
    )


def event(subject: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    return record(
        "Ev", f("event_id", "string"), f("subject", ["null", subject], default=None), *extra, namespace="t"
    )


# Records -------------------------------------------------------------------------------------


def test_identical_schemas_resolve() -> None:
    assert problems(event(person()), event(person())) == []


def test_reader_field_without_default_missing_from_writer_names_nested_path() -> None:
    new = event(person(f("postcode", "string", pii="quasi")))
    assert problems(new, event(person())) == [
        "reader field 'subject.postcode' has no default and is missing from the writer schema"
    ]


def test_reader_field_with_default_missing_from_writer_is_fine() -> None:
    new = event(person(f("postcode", ["null", "string"], default=None)))
    assert problems(new, event(person())) == []


def test_writer_field_absent_from_reader_is_ignored() -> None:
    old = event(person(f("postcode", "string")))
    assert problems(event(person()), old) == []


def test_field_alias_matches_renamed_writer_field() -> None:
    old = record("R", f("surname", "string"))
    assert rules(record("R", f("family_name", "string", aliases=["surname"])), old) == []
    assert rules(record("R", f("family_name", "string")), old) == [
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "family_name")
    ]


# Primitives and promotions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
        ("null", "null"),
        ("boolean", "boolean"),
    ],
)
def test_allowed_promotions(writer: str, reader: str) -> None:
    assert problems(record("R", f("x", reader)), record("R", f("x", writer))) == []


@pytest.mark.parametrize(
    ("writer", "reader"),
    [("long", "int"), ("double", "float"), ("float", "long"), ("string", "int"), ("boolean", "int")],
)
def test_narrowing_or_unrelated_types_are_refused(writer: str, reader: str) -> None:
    assert problems(record("R", f("x", reader)), record("R", f("x", writer))) == [
        f"field 'x': reader type '{reader}' cannot read writer type '{writer}'"
    ]


def test_logical_types_resolve_on_their_underlying_type() -> None:
    dated = record("R", f("dob", {"type": "int", "logicalType": "date"}))
    assert problems(dated, record("R", f("dob", "int"))) == []
    assert problems(record("R", f("dob", "long")), dated) == []


# Enums ---------------------------------------------------------------------------------------


def gender(*symbols: str, **attrs: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Gender", "symbols": list(symbols), **attrs}


def test_enum_writer_symbol_missing_from_reader_is_an_error() -> None:
    assert problems(record("R", f("g", gender("F", "M"))), record("R", f("g", gender("F", "M", "X")))) == [
        "field 'g': writer enum symbols ['X'] are missing from reader enum 'Gender', "
        "which has no default symbol"
    ]


def test_enum_default_absorbs_unknown_writer_symbols() -> None:
    reader = record("R", f("g", gender("F", "M", "U", default="U")))
    assert problems(reader, record("R", f("g", gender("F", "M", "X")))) == []


def test_enum_reader_may_add_symbols() -> None:
    assert problems(record("R", f("g", gender("F", "M", "X"))), record("R", f("g", gender("F", "M")))) == []


# Unions --------------------------------------------------------------------------------------


def test_reader_union_with_a_branch_for_the_writer_type() -> None:
    assert problems(record("R", f("x", ["null", "long"])), record("R", f("x", "int"))) == []


def test_reader_union_without_a_branch_for_the_writer_type() -> None:
    assert rules(record("R", f("x", ["null", "string"])), record("R", f("x", "int"))) == [
        ("MISSING_UNION_BRANCH", "x")
    ]


def test_every_writer_union_branch_must_be_readable() -> None:
    assert problems(record("R", f("x", "string")), record("R", f("x", ["null", "string"]))) == [
        "field 'x': reader type 'string' cannot read writer type 'null'"
    ]
    assert (
        problems(record("R", f("x", ["string", "null", "int"])), record("R", f("x", ["null", "string"])))
        == []
    )


# Arrays, maps, fixed, names ------------------------------------------------------------------


def test_arrays_and_maps_resolve_their_items_recursively() -> None:
    role = {"type": "enum", "name": "Role", "symbols": ["VICTIM", "SUSPECT"]}
    old = record("R", f("people", {"type": "array", "items": record("P", f("role", role))}))
    new = record("R", f("people", {"type": "array", "items": record("P", f("role", role), f("age", "int"))}))
    assert rules(new, old) == [("READER_FIELD_MISSING_DEFAULT_VALUE", "people[].age")]
    assert (
        problems(
            record("R", f("m", {"type": "map", "values": "long"})),
            record("R", f("m", {"type": "map", "values": "int"})),
        )
        == []
    )
    assert rules(
        record("R", f("m", {"type": "map", "values": "int"})),
        record("R", f("m", {"type": "map", "values": "string"})),
    ) == [("TYPE_MISMATCH", "m{}")]


def test_fixed_needs_the_same_size_and_name() -> None:
    def fx(name: str, size: int) -> dict[str, Any]:
        return record("R", f("h", {"type": "fixed", "name": name, "size": size}))

    assert problems(fx("Hash", 16), fx("Hash", 16)) == []
    assert problems(fx("Hash", 32), fx("Hash", 16)) == [
        "field 'h': reader fixed 'Hash' has size 32 but the writer's has size 16"
    ]
    assert rules(fx("Digest", 16), fx("Hash", 16)) == [("NAME_MISMATCH", "h")]


def test_named_types_match_by_name_or_reader_alias() -> None:
    old = record("Crime", f("id", "string"), namespace="police")
    assert rules(record("Offence", f("id", "string"), namespace="police"), old) == [("NAME_MISMATCH", "")]
    renamed = record("Offence", f("id", "string"), namespace="police", aliases=["Crime"])
    assert problems(renamed, old) == []
    moved = record("Crime", f("id", "string"), namespace="justice")
    assert problems(moved, old) == []  # unqualified names match, as in Avro's Java implementation


def test_recursive_types_terminate() -> None:
    node = record("Node", f("value", "int"), f("next", ["null", "Node"], default=None))
    bigger = record(
        "Node", f("value", "long"), f("next", ["null", "Node"], default=None), f("tag", "string", default="")
    )
    assert problems(bigger, node) == []
    assert rules(record("Node", f("value", "int"), f("next", ["null", "Node"], default=None)), bigger) == [
        ("TYPE_MISMATCH", "value")  # reported once: the recursion through "next" stops at Node again
    ]


# Levels --------------------------------------------------------------------------------------

V1 = record("R", f("a", "string"))
V2 = record("R", f("a", "string"), f("b", "int", default=0))
V3 = record("R", f("a", "string"), f("b", "int"))  # b loses its default: fine against v2, not v1


def history(*docs: dict[str, Any]) -> list[tuple[int, Any]]:
    return [(i, schema(d)) for i, d in enumerate(docs, start=1)]


def test_backward_checks_the_latest_only_and_transitive_checks_all() -> None:
    assert check_compatibility(CompatibilityLevel.BACKWARD, schema(V3), history(V1, V2)) == []
    assert check_compatibility(CompatibilityLevel.BACKWARD_TRANSITIVE, schema(V3), history(V1, V2)) == [
        "reader field 'b' has no default and is missing from the writer schema "
        "(BACKWARD_TRANSITIVE: the new schema reading data written with version 1)"
    ]


def test_forward_means_old_readers_can_read_new_data() -> None:
    dropped = record("R", f("b", "int", default=0))  # removes required field a
    messages = check_compatibility(CompatibilityLevel.FORWARD, schema(dropped), history(V2))
    assert messages == [
        "reader field 'a' has no default and is missing from the writer schema "
        "(FORWARD: version 1 reading data written with the new schema)"
    ]
    assert check_compatibility(CompatibilityLevel.BACKWARD, schema(dropped), history(V2)) == []


def test_full_checks_both_directions_and_none_checks_nothing() -> None:
    added_required = record("R", f("a", "string"), f("c", "int"))
    assert len(check_compatibility(CompatibilityLevel.FULL, schema(added_required), history(V1))) == 1
    assert check_compatibility(CompatibilityLevel.FULL, schema(V2), history(V1)) == []
    narrowed = record("R", f("a", "int"))
    full_transitive = check_compatibility(
        CompatibilityLevel.FULL_TRANSITIVE, schema(narrowed), history(V1, V2)
    )
    assert len(full_transitive) == 4  # both directions against both versions
    assert check_compatibility(CompatibilityLevel.NONE, schema(narrowed), history(V1, V2)) == []
    assert check_compatibility(CompatibilityLevel.FORWARD_TRANSITIVE, schema(V1), []) == []


def test_level_names_parse_in_any_case() -> None:
    assert CompatibilityLevel.parse("full_transitive") is CompatibilityLevel.FULL_TRANSITIVE
    assert CompatibilityLevel.parse("sideways") is None
    assert CompatibilityLevel.parse(None) is None


# Parsing and identity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named_problem"),
    [
        ("{not json", "not valid JSON"),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "strin"}]}',
            "unknown type 'strin'",
        ),
        ('{"type": "record", "name": "R"}', 'no "fields" array'),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "int", "default": "a"}]}',
            "Default value",
        ),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}, '
            '{"name": "x", "type": "int"}]}',
            "duplicate field name 'x'",
        ),
        ('{"type": "fixed", "name": "F"}', 'integer "size"'),
        ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', "unique"),
        ("42", "must be a JSON string, object or array"),
        ("", "empty"),
    ],
)
def test_invalid_schemas_name_their_problem(text: str, named_problem: str) -> None:
    with pytest.raises(InvalidSchema, match=None) as info:
        parse_avro(text)
    assert named_problem in str(info.value)


def test_identity_ignores_layout_but_not_attributes() -> None:
    compact = '{"type":"record","name":"R","fields":[{"name":"x","type":"string","pii":"direct"}]}'
    spaced = (
        '{ "name": "R",\n  "type": "record", "fields": [ {"type": "string", "pii": "direct", "name": "x"} ] }'
    )
    untagged = '{"type":"record","name":"R","fields":[{"name":"x","type":"string"}]}'
    assert canonical_key(compact) == canonical_key(spaced)
    assert canonical_key(compact) != canonical_key(untagged)
    assert parse_avro(spaced).text == spaced  # kept exactly as registered
