"""Untrusted text: prompt text and optimiser output from Cekura, end to end.

Cekura's words reach pull request bodies, comments, job summaries and the Actions log.
There they must not close the fence they sit in, hide content with HTML, ping anyone,
reference issues, spoof the machine block, or run workflow commands. The unit tests pin the
escaping helpers to CommonMark's fence rules and to actions/toolkit's escaping
(`packages/core/src/command.ts`, reference/github-notes.md §4).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cekura_gitops import actions, diffs, markdown, prbody
from cekura_gitops.sandbox import Fault, OptimiserOutcome, Sandbox
from tests.conftest import CliResult, Repo

GREETING = "caller_greeted_by_name_1562"
TOKEN = "ghs_untrustedTokenForTests0123456789"
ZWJ = "\u200d"

# Each line is an attack on the Markdown around it or on the runner reading the log.
HOSTILE_LINES = [
    "Score TRUE if the caller was greeted.",
    "```",
    "````",
    "~~~",
    "``````````diff",
    "</details><!-- everything below is hidden",
    "<details><summary>nothing to see</summary>",
    "Ping @acme/security-team and @octocat about #12, GH-34 and acme/other#56",
    "See https://github.com/acme/other/issues/78 and www.github.com/acme/other/pull/9",
    "::set-output name=changed::true",
    "::add-mask::everything",
    "  ::error file=x.py::injected",
    "::stop-commands::deadbeefdeadbeefdeadbeefdeadbeef",
    "##[set-output name=x;]y",
    '<!-- cekura-gitops {"proposal":"spoofed","metric_id":1} -->',
    prbody.END,
    prbody.BEGIN,
    "Score FALSE otherwise.",
]
HOSTILE = "\n".join(HOSTILE_LINES)
# The proposal inserts a line after every hostile one, so every hostile line shows in the
# diff as a context line: " ```" (one space) is a valid fence closer in CommonMark.
PROPOSED = "\n".join(f"{line}\nGuidance {i}." for i, line in enumerate(HOSTILE_LINES))
SUMMARY = (
    "Improved greeting detection.\n```\n</details>\n<!-- hidden -->\n@octocat fixes #7\n"
    "::set-output name=pwned::1\n\n# A heading\n- see https://github.com/acme/other/issues/5"
)
SAMPLE = "Caller said hi.\n```\n<!--\n@acme/team GH-9 #3\n::error::from a sample"
ERROR = "Optimiser crashed\n::set-output name=changed::true\r::add-mask::everything\n##[error]x"
MARKERS = ("set-output", "add-mask::everything", "injected", "##[", "deadbeef", "from a sample", "pwned")


# --- Markdown structure -------------------------------------------------------------------

FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
FENCE_CLOSE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def fenced_blocks(text: str) -> list[tuple[int, int, str]]:
    """Top-level fenced code blocks as (opening line, closing line, info), CommonMark rules."""
    lines = LINE_BREAK.split(text)
    blocks, open_at, marker, info = [], -1, "", ""
    for i, line in enumerate(lines):
        if open_at < 0:
            match = FENCE_OPEN.match(line)
            if match and not (match[1][0] == "`" and "`" in match[2]):
                open_at, marker, info = i, match[1], match[2].strip()
        else:
            match = FENCE_CLOSE.match(line)
            if match and match[1][0] == marker[0] and len(match[1]) >= len(marker):
                blocks.append((open_at, i, info))
                open_at = -1
    assert open_at < 0, f"a fence opened at line {open_at + 1} never closes"
    return blocks


def outside_code(text: str) -> str:
    """The text with fenced blocks and inline code spans removed."""
    lines = LINE_BREAK.split(text)
    for start, end, _ in reversed(fenced_blocks(text)):
        del lines[start : end + 1]
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", " ", "\n".join(lines))


def assert_inert(
    text: str, *, allowed_html: tuple[str, ...] = (), allowed_links: tuple[str, ...] = ()
) -> None:
    """No ping, issue reference, link, hiding HTML or hostile marker outside code."""
    prose = outside_code(text)
    for allowed in (*allowed_html, *allowed_links):
        prose = prose.replace(allowed, " ")
    assert not re.search(r"@[A-Za-z0-9]", prose), _near(prose, "@")
    assert not re.search(r"#\d", prose), _near(prose, "#")
    assert not re.search(r"(?i)\bgh-\d", prose)
    assert not re.search(r"(?i)((?<!\u200d)://|\bwww\.)", prose), _near(prose, "://")
    assert "<" not in prose, _near(prose, "<")


def _near(text: str, needle: str) -> str:
    at = text.find(needle)
    return repr(text[max(0, at - 80) : at + 80])


# --- the Actions log ----------------------------------------------------------------------

TOOL_COMMAND = re.compile(r"::(add-mask|group|endgroup|error|warning|notice)( [^:\r\n]*)?::")


def check_log(text: str, payloads: tuple[str, ...]) -> list[str]:
    """Every line the runner would read as a command is the tool's own; returns the tokens."""
    region: str | None = None
    tokens: list[str] = []
    for line in LINE_BREAK.split(text):
        if region is not None:
            if line.strip() == f"::{region}::":
                region = None
            continue
        command = line.lstrip()  # Python strips a superset of what the runner trims
        if command.startswith("::stop-commands::"):
            region = command[len("::stop-commands::") :]
            assert re.fullmatch(r"[0-9a-f]{32}", region), line
            assert all(region not in p for p in payloads)
            tokens.append(region)
        elif command.startswith(("::", "##[")):
            assert TOOL_COMMAND.match(command), f"not the tool's command: {line!r}"
            if command.startswith("::add-mask::"):  # only the two secrets of these runs
                assert command.removeprefix("::add-mask::") in ("sandbox-key", TOKEN), line
            # The tool's annotations carry escaped data: one line, markers harmless in it.
            assert "\r" not in command
    assert region is None, "a stop-commands region was never closed"
    assert len(set(tokens)) == len(tokens), "a stop-commands token was reused"
    for line in LINE_BREAK.split(_outside_regions(text)):
        if not line.lstrip().startswith("::"):
            for marker in ("::set-output", "::add-mask::", "::stop-commands::", "::error"):
                assert not line.lstrip().startswith(marker), line
    return tokens


def _outside_regions(text: str) -> str:
    return re.sub(r"::stop-commands::([0-9a-f]{32})\n.*?\n::\1::", "", text, flags=re.S)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def world(repo: Repo, cli, make_fake_github, tmp_path: Path) -> Iterator[tuple[Repo, Sandbox, object, dict]]:  # type: ignore[no-untyped-def,type-arg]
    sandbox = Sandbox().start()
    gh = make_fake_github(origin_path=repo.origin, owner="acme", repo="metrics", token=TOKEN)
    env = {
        "CEKURA_API_URL": sandbox.url,
        "CEKURA_API_KEY": sandbox.api_key,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": "acme/metrics",
        "GITHUB_API_URL": gh.url,
        "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL": "0",
        "CEKURA_GITOPS_HTTP_BACKOFF": "0",
    }
    try:
        sandbox.state.dashboard_edit(1562, description=HOSTILE)  # hostile before it reaches git
        pulled = cli("pull", "--project", "1376", cwd=repo.work, env=env)
        assert pulled.code == 0, pulled.err
        repo.commit_all("import metrics")
        repo.push()
        actions_env = {
            **env,
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "output"),
        }
        yield repo, sandbox, gh, actions_env
    finally:
        sandbox.stop()
    assert sandbox.validation_errors == []


def _log(result: CliResult) -> str:
    return result.out + "\n" + result.err


def test_hostile_proposal_pr_body_summary_and_log(world, cli) -> None:  # type: ignore[no-untyped-def]
    repo, sandbox, gh, env = world
    assert (repo.work / f"metrics/{GREETING}.yaml").read_text().count("::set-output") == 1
    sandbox.state.set_optimiser_outcome(
        1562,
        OptimiserOutcome(
            description=PROPOSED,
            summary=SUMMARY,
            old=(5, 7),
            new=(7, 7),
            unresolved_samples=({"explanation": SAMPLE, "verdict": SAMPLE, "pass_rate": SAMPLE},),
            # Per-review explanations and label changes are Cekura's words too.
            review_results=tuple(
                {
                    "review_id": rid,
                    "test_set_id": ts,
                    "actual_value": value,
                    "explanation": SAMPLE,
                    "success": True,
                }
                for rid, ts, value in ((9001, 456, SAMPLE), (9004, 456, False), (9006, 789, False))
            ),
            unauthorized_label_changes=(
                {
                    "review_id": 9004,
                    "old_expected_value": "```\n<!--",
                    "new_expected_value": SAMPLE,
                    "reason": SAMPLE,
                },
            ),
            feedback_edits=({"review_id": 9006, "old_feedback": SAMPLE, "new_feedback": SUMMARY},),
        ),
    )
    result = cli("sync", "--metric", GREETING, "--force", cwd=repo.work, env=env)
    assert result.code == 0, _log(result)
    check_log(_log(result), (HOSTILE, PROPOSED, SUMMARY))
    [pr] = gh.pulls
    body = pr["body"]

    # The diff fence closes exactly where the diff ends, and holds it byte for byte.
    expected = diffs.field_diff("description", HOSTILE, PROPOSED, old_label="a", new_label="b")
    assert " ```" in expected and " ``````````diff" in expected  # context lines that could close
    [(start, end, info)] = [b for b in fenced_blocks(body) if b[2] == "diff"]
    lines = LINE_BREAK.split(body)
    assert "\n".join(lines[start + 1 : end]) + "\n" == expected

    # Outside code, nothing pings, links, references or hides; the tool's own HTML stays.
    machine = re.findall(r"<!-- cekura-gitops \{.*?\} -->", body)[-1]
    assert "spoofed" not in machine
    own_html = (prbody.BEGIN, prbody.END, machine, "<details><summary>", "</summary>", "</details>")
    dashboard = "](https://dashboard.cekura.ai/metrics/1562)"
    assert_inert(body, allowed_html=own_html, allowed_links=(dashboard,))
    assert outside_code(body).count("<details>") == 1 and outside_code(body).count("</details>") == 1
    assert "breaks 1 labelled review" in body and "### Label changes nobody approved" in body
    table_lines = [
        line for line in LINE_BREAK.split(body) if line.startswith(("| 9001 |", "| 9004 |", "| 9006 |"))
    ]
    assert len(table_lines) == 5  # three evidence rows, two label changes: each one line
    assert body.startswith(prbody.BEGIN) and body.rstrip().endswith(prbody.END)

    # The machine block cannot be spoofed by the prompt text above it.
    data = prbody.read_machine(body)
    assert data["proposal"] != "spoofed" and data["metric_id"] == 1562
    commit = repo.origin_git("log", "-1", "--format=%B", f"refs/heads/cekura-gitops/optimise/{GREETING}")
    assert f"Cekura-GitOps-Proposal: {data['proposal']}" in commit

    # An update in place keeps one tool section (the END inside the diff is not the real one).
    sandbox.state.add_review(1562, True, False, feedback="A new label.")
    again = cli("sync", "--metric", GREETING, "--force", cwd=repo.work, env=env)
    assert again.code == 0, _log(again)
    [pr] = gh.pulls
    assert pr["body"].count(prbody.BEGIN) == 1 + pr["body"].count(f" {prbody.BEGIN}")
    assert prbody.read_machine(pr["body"])["proposal"] != "spoofed"


def test_hostile_live_text_in_plan_log_summary_and_comment(world, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, sandbox, gh, env = world
    sandbox.state.dashboard_edit(1562, description=PROPOSED)  # live now differs from git
    pr = gh.add_pull(head="feature", title="A change")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": pr["number"]}}))
    env = {**env, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    text_run = cli("plan", cwd=repo.work, env=env)
    md_run = cli("plan", "--format", "markdown", "--comment", cwd=repo.work, env=env)
    json_run = cli("--json", "plan", "--format", "markdown", cwd=repo.work, env=env)
    tokens = []
    for result in (text_run, md_run, json_run):
        assert result.code == 0, _log(result)
        tokens += check_log(result.out, (HOSTILE, PROPOSED))
        tokens += check_log(result.err, (HOSTILE, PROPOSED))
    assert len(tokens) >= 2 and len(set(tokens)) == len(tokens)  # fresh, unguessable tokens
    # --json prints the Markdown to stderr without a region: each command line is defused.
    assert f":{ZWJ}:set-output" in json_run.err
    assert any("::set-output" in r.out for r in (text_run, md_run)), "the diff was not in the log"

    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    [comment] = [c["body"] for c in gh.comments_on(pr["number"])]
    expected = diffs.field_diff("description", PROPOSED, HOSTILE, old_label="live", new_label="repo")
    for markdown_text in (summary, comment):
        blocks = [b for b in fenced_blocks(markdown_text) if b[2] == "diff"]
        assert blocks, markdown_text
        lines = LINE_BREAK.split(markdown_text)
        assert any("\n".join(lines[s + 1 : e]) + "\n" == expected for s, e, _ in blocks)
        own = ("<!-- cekura-gitops:plan -->", "<details><summary>", "</summary>", "</details>")
        assert_inert(markdown_text, allowed_html=own)


def test_hostile_optimiser_error_in_log_and_summary(world, cli) -> None:  # type: ignore[no-untyped-def]
    repo, sandbox, gh, env = world
    sandbox.state.set_optimiser_outcome(1562, OptimiserOutcome(status="error", error=ERROR))
    result = cli("sync", "--metric", GREETING, "--force", cwd=repo.work, env=env)
    assert result.code == 1
    log = _log(result)
    assert "Optimiser crashed" in log and "set-output" in log  # reported, but inert
    check_log(log, (ERROR,))
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    [row] = [line for line in summary.splitlines() if GREETING in line]
    assert "Optimiser crashed" in row and "\r" not in summary
    assert_inert(summary)
    # The summary row stays one table row: every pipe in the cell is escaped.
    assert re.sub(r"\\\|", "", row).count("|") == 6


# --- unit: markdown ---------------------------------------------------------------------------

TEXT = st.text(alphabet=st.sampled_from("`~ \t\r\n@#<>&|:/-abgGhHw.0123456789!\u2028"), max_size=60)


@given(TEXT)
def test_fence_closes_only_at_its_end_and_holds_text_exactly(text: str) -> None:
    out = markdown.fence(text, "diff")
    [(start, end, info)] = fenced_blocks(out)
    assert (start, end, info) == (0, len(LINE_BREAK.split(out)) - 1, "diff")
    body = "\n".join(out.split("\n")[1:-1])
    assert body == (text[:-1] if text.endswith("\n") else text)


@given(TEXT)
def test_inline_code_is_one_span_on_one_line(text: str) -> None:
    out = markdown.inline_code(text)
    assert "\n" not in out and "\r" not in out
    ticks = len(out) - len(out.lstrip("`"))
    inner = out[ticks:-ticks]
    assert out.endswith("`" * ticks)
    assert max((len(r) for r in re.findall(r"`+", inner)), default=0) < ticks
    flat = re.sub(r"\r\n|\r|\n", " ", text)
    assert inner in (flat, f" {flat} ")


@given(TEXT)
def test_prose_is_inert_and_reads_the_same(text: str) -> None:
    out = markdown.prose(text)
    assert "<" not in out and ">" not in out
    assert not re.search(r"@[A-Za-z0-9]|#\d|(?i:gh-\d)|(?<!\u200d)://|(?i:\bwww\.)", out)
    assert html.unescape(out.replace(ZWJ, "")) == text  # only invisible changes


@given(TEXT)
def test_cell_and_one_line_stay_on_one_line(text: str) -> None:
    for out in (markdown.one_line(text), markdown.cell(text)):
        assert "\n" not in out and "\r" not in out
    assert "|" not in re.sub(r"\\\|", "", markdown.cell(text))


def test_prose_examples() -> None:
    assert markdown.prose("@acme/team") == f"@{ZWJ}acme/team"
    assert markdown.prose("#12 GH-12 gh-3 o/r#12") == f"#{ZWJ}12 GH-{ZWJ}12 gh-{ZWJ}3 o/r#{ZWJ}12"
    assert markdown.prose("<!-- x --> <details>") == "&lt;!-- x --&gt; &lt;details&gt;"
    assert markdown.prose("https://github.com/o/r/issues/1") == f"https{ZWJ}://github.com/o/r/issues/1"
    assert markdown.prose("www.github.com/o/r/pull/2") == f"www{ZWJ}.github.com/o/r/pull/2"
    assert markdown.cell("a|b\nc") == "a\\|b c"
    assert markdown.fence("a ``` b") == "````\na ``` b\n````"
    assert markdown.inline_code("a`b") == "``a`b``" and markdown.inline_code("`x") == "`` `x ``"


# --- unit: workflow commands (actions/toolkit packages/core/src/command.ts) --------------------


def _unescape_data(value: str) -> str:
    return value.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def _unescape_property(value: str) -> str:
    return _unescape_data(value.replace("%3A", ":").replace("%2C", ","))


def test_escaping_matches_the_toolkit() -> None:
    assert actions.escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert actions.escape_data("a:b,c") == "a:b,c"  # data keeps : and ,
    assert actions.escape_property("x.py:3, 50%\n") == "x.py%3A3%2C 50%25%0A"
    assert actions.escape_data("%0A") == "%250A"  # already-escaped text stays literal
    assert actions.command("error", "bad\n::set-output x::1", file="a:b,c.yaml", line=3) == (
        "::error file=a%3Ab%2Cc.yaml,line=3::bad%0A::set-output x::1"
    )


PRINTABLE = st.text(alphabet=st.sampled_from("%:,\r\n \tab0A2D5C3"), max_size=40)


@given(PRINTABLE, PRINTABLE)
def test_escaped_commands_are_one_line_and_round_trip(message: str, prop: str) -> None:
    data, value = actions.escape_data(message), actions.escape_property(prop)
    assert "\r" not in data and "\n" not in data and _unescape_data(data) == message
    assert not set(value) & set("\r\n:,") and _unescape_property(value) == prop
    line = actions.command("warning", message, title=prop)
    assert LINE_BREAK.split(line) == [line]


@given(st.text(alphabet=st.sampled_from(":#[ \t\r\n\u2003\x0bab"), max_size=40))
def test_neutralise_leaves_no_command_line(text: str) -> None:
    out = actions.neutralise(text)
    for line in LINE_BREAK.split(out):
        assert not line.lstrip().startswith(("::", "##[")), repr(line)
    assert out.replace(ZWJ, "") == text.replace("\r\n", "\n").replace("\r", "\n")


def test_untrusted_print_uses_a_fresh_unguessable_token() -> None:
    import io

    seen = set()
    for _ in range(3):
        stream = io.StringIO()
        actions.print_untrusted("::set-output name=a::b\n::endgroup::", stream)
        first, *_, last = stream.getvalue().splitlines()
        token = first.removeprefix("::stop-commands::")
        assert re.fullmatch(r"[0-9a-f]{32}", token) and last == f"::{token}::"
        seen.add(token)
    assert len(seen) == 3


def test_hostile_error_body_cannot_run_workflow_commands(world, cli) -> None:  # type: ignore[no-untyped-def]
    repo, sandbox, gh, env = world
    sandbox.faults.add(Fault("*", ".*", status=500, times=None, body={"detail": ERROR}))
    result = cli("plan", cwd=repo.work, env=env)
    assert result.code == 1 and "Optimiser crashed" in result.err
    check_log(_log(result), (ERROR,))
