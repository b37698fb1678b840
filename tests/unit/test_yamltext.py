"""yamltext's character classes."""

from __future__ import annotations

import re

from cekura_gitops import yamltext

# The class as YAML's printable set is written, negated: what _NOT_PRINTABLE must equal.
PRINTABLE_NEGATED = re.compile(
    "[^\x09\x0a\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


def test_not_printable_is_the_complement_of_the_printable_set_at_every_code_point() -> None:
    every = "".join(map(chr, range(0x110000)))
    expected = [m.start() for m in PRINTABLE_NEGATED.finditer(every)]
    assert [m.start() for m in yamltext._NOT_PRINTABLE.finditer(every)] == expected
    assert len(expected) == 0x110000 - (
        2
        + 95
        + 0x2027
        - 0xA0
        + 1
        + 0xD7FF
        - 0x202A
        + 1
        + 0xFEFE
        - 0xE000
        + 1
        + 0xFFFD
        - 0xFF00
        + 1
        + 0x100000
    )


def test_a_scalar_with_control_and_separator_characters_round_trips() -> None:
    import yaml

    text = "a\x01b\x7fc\u2028d\ufeffe\U0001f600"
    rendered = yamltext.double_quoted(text)
    assert "\\u0001" in rendered and "\\u2028" in rendered and "\U0001f600" in rendered
    assert yaml.safe_load(f"k: {rendered}\n")["k"] == text
