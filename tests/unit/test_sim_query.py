"""The IoT Hub query subset: three-valued evaluation, functions and syntax errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import QuerySyntaxError
from simulator.jsondoc import JsonValue
from simulator.query import (
    FUNCTIONS,
    UNDEFINED,
    evaluate,
    matches,
    parse_condition,
    parse_twin_query,
    resolve_in_document,
)
from simulator.query.syntax import FUNCTION_ARITIES

DOC: JsonValue = {
    "moduleId": "classifier",
    "n": 5,
    "f": 0.5,
    "flag": True,
    "nothing": None,
    "tags": {"site": "lab", "floor": 2},
    "label": "Cat",
}


def check(condition: str) -> bool:
    return matches(parse_condition(condition), resolve_in_document(DOC))


@pytest.mark.parametrize(
    "condition",
    [
        "moduleId = 'classifier'",
        'moduleId = "classifier"',
        "n = 5 AND f < 1",
        "n > 4 AND n >= 5 AND n <= 5 AND n < 6 AND n != 4 AND n <> 4",
        "tags.site = 'lab' AND tags.floor = 2",
        "flag = true",
        "NOT flag = false",
        "missing = 1 OR n = 5",
        "(n = 1 OR n = 5) AND NOT (tags.site = 'home')",
        "IS_DEFINED(tags.site) AND NOT IS_DEFINED(tags.missing)",
        "IS_NULL(nothing) AND IS_NUMBER(n) AND IS_STRING(label) AND IS_BOOL(flag)",
        "IS_OBJECT(tags)",
        "LOWER(label) = 'cat' AND UPPER(label) = 'CAT' AND LENGTH(label) = 3",
        "STARTS_WITH(moduleId, 'class') AND ENDS_WITH(moduleId, 'fier')",
        "CONTAINS(moduleId, 'ssif')",
        "AS_NUMBER('2.5') = 2.5",
        "moduleId IN ['a', 'classifier']",
        "moduleId NOT IN ['a', 'b']",
        "moduleId NIN ['a']",
        "f = 5e-1",
        "and_name_is_fine = 1 OR TRUE = true",
    ],
)
def test_conditions_that_hold(condition: str) -> None:
    assert check(condition)


@pytest.mark.parametrize(
    "condition",
    [
        "missing = 1",
        "NOT missing = 1",
        "n = '5'",
        "flag > false",
        "nothing = null",
        "missing != 1",
        "tags > 1",
        "AS_NUMBER('abc') = 1",
        "missing IN [1]",
        "moduleId = 'Classifier'",
    ],
)
def test_conditions_that_do_not_hold(condition: str) -> None:
    assert not check(condition)


def test_comparing_with_something_missing_is_undefined_not_false() -> None:
    resolve = resolve_in_document(DOC)
    assert evaluate(parse_condition("missing = 1"), resolve) is UNDEFINED
    assert evaluate(parse_condition("missing = 1 OR n = 5"), resolve) is True
    assert evaluate(parse_condition("missing = 1 AND n = 4"), resolve) is False
    assert evaluate(parse_condition("missing = 1 AND n = 5"), resolve) is UNDEFINED


@pytest.mark.parametrize(
    ("condition", "position"),
    [
        ("n = ", 4),
        ("n = 'open", 4),
        ("(n = 1", 6),
        ("n = 1 n = 2", 6),
        ("n == 1", 3),
        ("UNKNOWN_FN(n)", 0),
        ("IS_DEFINED(a, b)", 0),
        ("n = 1 AND", 9),
        ("n NOT 1", 6),
        ("n IN [m]", 6),
        ("a.b. = 1", 3),
        ("n = 1" + "9" * 70, 4),
    ],
)
def test_syntax_errors_say_where(condition: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_condition(condition)
    assert caught.value.position == position


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(QuerySyntaxError, match="nested"):
        parse_condition("(" * 500 + "n = 1" + ")" * 500)
    with pytest.raises(QuerySyntaxError, match="nested"):
        parse_condition("NOT " * 500 + "n = 1")


def test_every_function_the_parser_knows_can_be_evaluated() -> None:
    assert set(FUNCTION_ARITIES) == set(FUNCTIONS)


def test_a_twin_query_names_its_collection_and_condition() -> None:
    query = parse_twin_query("select * from devices.modules where moduleId = 'classifier'")
    assert query.collection == "devices.modules"
    assert query.condition is not None
    assert parse_twin_query("SELECT * FROM devices").condition is None


def test_a_projection_keeps_the_fields_named_under_their_last_segment_or_alias() -> None:
    query = parse_twin_query(
        "SELECT deviceId, properties.reported.model.version, tags.site AS where FROM devices"
    )
    document: dict[str, JsonValue] = {
        "deviceId": "d1",
        "tags": {"site": "lab"},
        "properties": {"reported": {"model": {"version": "1.1.0"}}},
    }
    assert query.project(document) == {"deviceId": "d1", "version": "1.1.0", "where": "lab"}
    assert query.project({"deviceId": "d2"}) == {"deviceId": "d2"}


def test_bracketed_names_reach_properties_whose_names_other_names_cannot_spell() -> None:
    condition = parse_condition("configurations.[[rollout.1-0]].status = 'Applied'")
    document: JsonValue = {"configurations": {"rollout.1-0": {"status": "Applied"}}}
    assert matches(condition, resolve_in_document(document))


@pytest.mark.parametrize(
    "text",
    [
        "SELECT deviceId, FROM devices",
        "SELECT deviceId AS FROM devices",
        "SELECT * FROM jobs",
        "SELECT *",
        "* FROM devices",
        "SELECT * FROM devices WHERE",
    ],
)
def test_unsupported_twin_queries_are_syntax_errors(text: str) -> None:
    with pytest.raises(QuerySyntaxError):
        parse_twin_query(text)


def parse_and_evaluate_if_valid(text: str) -> None:
    try:
        expr = parse_condition(text)
    except QuerySyntaxError:
        return
    evaluate(expr, resolve_in_document(DOC))


@settings(deadline=None)
@given(st.text(max_size=200))
def test_the_parser_never_crashes_on_junk(junk: str) -> None:
    parse_and_evaluate_if_valid(junk)


_ATOMS = st.sampled_from(
    [
        "n",
        "tags.site",
        "'x'",
        "5",
        "-1.5",
        "true",
        "null",
        "(",
        ")",
        "AND",
        "OR",
        "NOT",
        "=",
        "<>",
        ">=",
        "IN",
        "[",
        "]",
        ",",
        "IS_DEFINED",
        "LOWER",
        "$body.a",
        "missing",
    ]
)


@settings(deadline=None)
@given(st.lists(_ATOMS, max_size=25))
def test_the_parser_never_crashes_on_plausible_token_soup(atoms: list[str]) -> None:
    parse_and_evaluate_if_valid(" ".join(atoms))
