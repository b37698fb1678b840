from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cekura_gitops import yamltext
from cekura_gitops.errors import MetricValidationError

DOC = """\
# header comment: stays
id: 1562
slug: caller_greeted_by_name_1562   # the slug

description: |-
  Score TRUE if the agent greets the caller by name.
  Score FALSE otherwise.

type: llm_judge            # llm_judge | custom_code
name: "Greeting"
agents: [42, 43]
optimiser:
  enabled: true
"""


def parse(text: str) -> yamltext.Document:
    return yamltext.parse(text, "m.yaml")


def load_value(rendered: str) -> object:
    return parse(f"k: {rendered}\n").data["k"]


def test_parse_gives_data_and_positions() -> None:
    doc = parse(DOC)
    assert doc.data["agents"] == [42, 43]
    assert doc.key_positions["type"] == (9, 1)
    assert doc.position(("agents", 1)) == (11, 14)
    assert doc.position(("optimiser", "enabled")) == (13, 12)


def test_set_field_changes_only_that_fields_lines() -> None:
    doc = parse(DOC)
    new = "Score TRUE if the agent greets the caller by name.\nIgnore titles.\nScore FALSE otherwise."
    out = yamltext.set_field(doc, "description", new)
    before, after = DOC.splitlines(), out.splitlines()
    assert after[:6] == before[:6]
    assert after[6] == "  Ignore titles."
    assert after[7:] == before[6:]
    assert parse(out).data["description"] == new


def test_set_field_keeps_trailing_comment_and_alignment() -> None:
    out = yamltext.set_field(parse(DOC), "type", "custom_code")
    assert "type: custom_code            # llm_judge | custom_code\n" in out
    assert out.replace("custom_code            #", "llm_judge            #") == DOC


def test_inline_to_block_keeps_comment_on_header() -> None:
    out = yamltext.set_field(parse(DOC), "slug", "two\nlines")
    assert "slug: |-   # the slug\n  two\n  lines\n\ndescription" in out
    assert parse(out).data["slug"] == "two\nlines"


def test_block_to_inline_keeps_blank_line_after() -> None:
    out = yamltext.set_field(parse(DOC), "description", "short")
    assert "description: short\n\ntype:" in out


def test_insert_after_anchor() -> None:
    out = yamltext.set_field(parse(DOC), "evaluation_trigger", "always", after=("type",))
    assert "type: llm_judge            # llm_judge | custom_code\nevaluation_trigger: always\nname:" in out


def test_crlf_file_keeps_crlf() -> None:
    text = DOC.replace("\n", "\r\n")
    out = yamltext.set_field(parse(text), "description", "a\nb")
    assert "\n" not in out.replace("\r\n", "")
    assert parse(out).data["description"] == "a\nb"


def test_block_indent_of_file_is_kept() -> None:
    text = "description: |-\n    four\n    spaces\nname: x\n"
    out = yamltext.set_field(parse(text), "description", "four\nspaces\nmore")
    assert out == "description: |-\n    four\n    spaces\n    more\nname: x\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ("", '""'),
        ("true", '"true"'),
        ("123", '"123"'),
        ("null", '"null"'),
        ("a: b", '"a: b"'),
        ("- item", '"- item"'),
        ("line\n", "|\n  line"),
        ("a\nb", "|-\n  a\n  b"),
        ("trailing  \nspace", '"trailing  \\nspace"'),
        ("\nleading newline", '"\\nleading newline"'),
        ("two trailing\n\n", '"two trailing\\n\\n"'),
        ("tab\there", '"tab\\there"'),
        (True, "true"),
        (None, "null"),
        (3, "3"),
        ([1, 2], "[1, 2]"),
    ],
)
def test_render_scalar(value: object, expected: str) -> None:
    rendered = yamltext.render_scalar(value)
    assert rendered == expected
    assert load_value(rendered) == value


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_string_round_trips(value: str) -> None:
    assert load_value(yamltext.render_scalar(value)) == value


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["", " ", "  x", "\t", "yes", "1.5", "#c", "a: b", "é", "\u2028", "```", "'q'", '"'])
        | st.text(max_size=8),
        max_size=6,
    ).map("\n".join)
)
def test_multiline_edits_round_trip_in_place(value: str) -> None:
    out = yamltext.set_field(parse(DOC), "description", value)
    reparsed = parse(out)
    assert reparsed.data["description"] == value
    assert {k: v for k, v in reparsed.data.items() if k != "description"} == {
        k: v for k, v in parse(DOC).data.items() if k != "description"
    }
    assert out.startswith(DOC[: DOC.index("description:")])
    assert out.endswith(DOC[DOC.index("\ntype:") :])


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \n\r\t#:-"), max_size=30))
def test_crlf_and_blank_lines_round_trip(value: str) -> None:
    assert load_value(yamltext.render_scalar(value)) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: *x\n", "aliases"),
        ("a: &x 1\nb: 2\n", "anchors"),
        ("a: !!python/object:os.system x\n", "tags"),
        ("a: 1\n---\nb: 2\n", "second document"),
        ("a: [1, 2\n", "invalid YAML"),
        ("", "empty"),
        ("- 1\n- 2\n", "mapping"),
        ("a: 1\na: 2\n", "duplicate key"),
        ("{a: 1}\n", "block YAML"),
    ],
)
def test_hostile_yaml_is_refused_with_position(text: str, message: str) -> None:
    with pytest.raises(MetricValidationError) as err:
        parse(text)
    assert message in str(err.value)
    assert str(err.value).startswith("m.yaml:")


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    with pytest.raises(MetricValidationError, match="anchors|aliases"):
        parse("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xef\xbb\xbfslug: x\n", "byte-order mark"),
        (b"slug: \xff\xfe\n", "not valid UTF-8"),
        (b"slug: a\x00b\n", "NUL"),
        (b"a: " + b"x" * (1024 * 1024 + 1), "1 MiB"),
    ],
)
def test_decode_refuses_bad_bytes(raw: bytes, message: str) -> None:
    with pytest.raises(MetricValidationError, match=message):
        yamltext.decode(raw, "m.yaml")


def test_yaml_1_2_booleans_only() -> None:
    data = parse("notify: {on: failure}\na: yes\nb: off\nc: true\nd: False\n").data
    assert data == {"notify": {"on": "failure"}, "a": "yes", "b": "off", "c": True, "d": False}


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "N"])
def test_yaml_1_1_boolean_words_are_quoted(word: str) -> None:
    rendered = yamltext.render_scalar(word)
    assert rendered == f'"{word}"'
    assert load_value(rendered) == word


# Documents of every shape parse's two paths must agree on: the fast path (built from the
# events) where it applies, the general path (node tree + safe constructor) elsewhere.
SHAPES = [
    DOC,
    "a: 1\na: 2\n",
    "a: {b: 1, b: 2}\nc: [ {d: 1}, {d: 1, d: 2} ]\n",
    '1: x\n"1": y\n~: z\n',
    "<<: {a: 1}\nb: 2\n",
    "a: 2020-01-01\n",
    "{a: 1}\n",
    "",
    "# only a comment\n",
    "x\n",
    "- a\n- b\n",
    "a: ! foo\n",
    "a:\n  - 1\n  - [2, {c: ~}]\nb: |\n  t\n\nc: >-\n  u\nd: 1.5\ne: .inf\nf: 0x1F\ng: true\nh: yes\n",
    "a: 1\r\nb:\r\n  c: d\r\n",
    "? [a]\n: b\n",
    "a: =\n",
    "a: 1:20\n",
    "a: b\n...\n",
    "a:\nb: null\n",
    "a: [\n]\nb: {}\n",
    "a: 0o17\nb: -0b11\nc: 1_000\nd: 12e3\n",
    "? a\n: 1\n",
]


def _both_paths(text: str) -> tuple[object, object]:
    def outcome(parse_with: object) -> object:
        try:
            doc = parse_with()  # type: ignore[operator]
        except MetricValidationError as err:
            return [str(p) for p in err.problems]
        return (doc.data, dict(doc.positions), dict(doc.key_positions), dict(doc.spans), doc.newline)

    try:
        events = yamltext._read_events(text, "m.yaml")
    except MetricValidationError as err:
        refused = [str(p) for p in err.problems]
        return refused, refused
    return outcome(lambda: parse(text)), outcome(lambda: yamltext._parse_nodes(events, text, "m.yaml"))


@pytest.mark.parametrize("text", SHAPES)
def test_fast_parse_gives_what_the_general_path_gives(text: str) -> None:
    fast, general = _both_paths(text)
    assert fast == general


def test_a_metric_file_takes_the_fast_path() -> None:
    assert yamltext._build(yamltext._read_events(DOC, "m.yaml"), DOC, "m.yaml") is not None


_scalars = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.sampled_from(["yes", "1:20", "0x1F", "~", "2020-01-01", "=", "<<", ".inf"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_scalars, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), _values, min_size=1, max_size=5), st.booleans())
def test_fast_parse_agrees_on_generated_documents(fields: dict[str, object], flow: bool) -> None:
    import yaml

    text = yaml.safe_dump(fields, default_flow_style=flow, allow_unicode=True, sort_keys=False)
    fast, general = _both_paths(text)
    assert fast == general
