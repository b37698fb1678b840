"""Hostile and broken input: every corpus case is refused cleanly by every command.

The cases and their expected messages are listed in tests/corpus/README.md. For each one,
`validate`, `plan`, `sync` and `apply` must exit 1 with a message naming the file, write
nothing (work tree, refs and objects of the clone and of origin unchanged) and send no
request to the Cekura sandbox or the fake GitHub.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cekura_gitops import schema
from cekura_gitops.errors import ConfigError
from cekura_gitops.sandbox import Sandbox
from cekura_gitops.settings import resolve
from tests.conftest import HUMAN, CliResult
from tests.fakes.github_server import FakeGitHub

CORPUS = Path(__file__).parent / "corpus"
PACKAGE = Path(__file__).parent.parent / "cekura_gitops"
VALID = Path(__file__).parent.parent / "metrics" / "caller_greeted_by_name_1562.yaml"
TOKEN = "ghs_corpusTokenForTests0123456789"
PWNED = "pwned-by-corpus"
ROW = re.compile(r"^\| `(?P<case>[^`]+)` \| .* \| `(?P<fragment>[^`]+)` \|$")


def _table() -> dict[str, str]:
    rows = {}
    for line in (CORPUS / "README.md").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows[match["case"]] = match["fragment"]
    return rows


TABLE = _table()
METRIC_CASES = sorted(c for c in TABLE if c.startswith("metrics/"))
CONFIG_CASES = sorted(c for c in TABLE if c.startswith("config/"))
# apply reads the committed tree, where a symlink is a mode, not a file to follow.
APPLY_FRAGMENT = {
    "generated/symlink_outside_repo": "is a symlink",
    "generated/symlink_loop": "is a symlink",
    # apply sees the whole tree at head: both files of a clash are named.
    "metrics/duplicate_id/": "duplicate id",
    "metrics/duplicate_slug/": "duplicate slug",
    "generated/slug_case_clash": "duplicate slug",
}


def test_corpus_table_and_files_agree() -> None:
    on_disk = {f"metrics/{p.name}" + ("/" if p.is_dir() else "") for p in (CORPUS / "metrics").iterdir()}
    on_disk |= {f"config/{p.name}" for p in (CORPUS / "config").iterdir()}
    assert on_disk == set(METRIC_CASES) | set(CONFIG_CASES)
    assert len(TABLE) + len(GENERATED) >= 40


# --- one repository, sandbox and fake GitHub for the whole module --------------------------


def _git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


@dataclass
class World:
    work: Path
    origin: Path
    outside: Path
    base: str
    sandbox: Sandbox
    github: FakeGitHub
    git_env: dict[str, str]

    @property
    def env(self) -> dict[str, str | None]:
        return {
            "CEKURA_API_URL": self.sandbox.url,
            "CEKURA_API_KEY": self.sandbox.api_key,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_REPOSITORY": "acme/metrics",
            "GITHUB_API_URL": self.github.url,
            "CEKURA_GITOPS_GITHUB_WRITE_INTERVAL": "0",
            "CEKURA_GITOPS_HTTP_BACKOFF": "0",
        }

    def git(self, *args: str) -> str:
        return _git(self.work, *args, env=self.git_env)

    def reset(self) -> None:
        self.git("reset", "-q", "--hard", self.base)
        for path in (self.work / "metrics").iterdir():  # FIFOs and symlinks: not for git clean
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        self.git("clean", "-qfdx")
        self.git("checkout", "-q", "--", ".")

    def snapshot(self) -> dict[str, object]:
        files: dict[str, str] = {}
        for path in sorted(self.work.rglob("*")):
            rel = str(path.relative_to(self.work))
            if rel == ".git" or rel.startswith(".git/"):
                continue
            if path.is_symlink():
                files[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                files[rel] = "dir" if path.is_dir() else "special"
        return {
            "files": files,
            "refs": self.git("for-each-ref", "--format=%(refname) %(objectname)"),
            "head": self.git("rev-parse", "HEAD"),
            "objects": self.git("count-objects", "-v"),
            "status": self.git("status", "--porcelain", "--ignored"),
            "origin refs": _git(self.origin, "for-each-ref", env=self.git_env),
            "origin objects": _git(self.origin, "count-objects", "-v", env=self.git_env),
        }

    def traffic(self) -> tuple[int, int]:
        return len(self.sandbox.requests), len(self.github.requests)

    def github_since(self, count: int) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.github.requests[count:]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("corpus")
    (root / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    git_env = {
        **os.environ,
        **HUMAN,
        "GIT_CONFIG_GLOBAL": str(root / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    origin, work, outside = root / "origin.git", root / "work", root / "outside"
    _git(root, "init", "-q", "--bare", str(origin), env=git_env)
    _git(root, "init", "-q", str(work), env=git_env)
    outside.mkdir()
    (work / "metrics").mkdir()
    shutil.copy(VALID, work / "metrics" / VALID.name)
    _git(work, "add", "-A", env=git_env)
    _git(work, "commit", "-qm", "a valid metric", env=git_env)
    _git(work, "remote", "add", "origin", str(origin), env=git_env)
    _git(work, "push", "-q", "-u", "origin", "main", env=git_env)
    base = _git(work, "rev-parse", "HEAD", env=git_env).strip()
    sandbox = Sandbox().start()
    github = FakeGitHub(origin_path=str(origin), owner="acme", repo="metrics", token=TOKEN).start()
    try:
        yield World(work, origin, outside, base, sandbox, github, git_env)
    finally:
        sandbox.stop()
        github.stop()
    assert sandbox.validation_errors == [] and github.validation_errors == []


# --- the cases ------------------------------------------------------------------------------


def _install_metric_case(world: World, case: str) -> list[str]:
    source = CORPUS / case
    sources = sorted(source.iterdir()) if source.is_dir() else [source]
    for path in sources:
        shutil.copyfile(path, world.work / "metrics" / path.name)
    return [f"metrics/{p.name}" for p in sources]


def _gen_huge_prompt(world: World) -> list[str]:
    text = VALID.read_text().replace("slug: caller_greeted_by_name_1562", "slug: huge_prompt")
    text = text.replace("description: |-\n", "description: |-\n" + ("  " + "x" * 98 + "\n") * 100_000)
    (world.work / "metrics/huge_prompt.yaml").write_text(text)
    assert len(text) > 10_000_000
    return ["metrics/huge_prompt.yaml"]


def _gen_one_byte_over(world: World) -> list[str]:
    head = "id: 9001\nslug: one_byte_over\nname: "
    text = head + "x" * (1024 * 1024 + 1 - len(head) - 1) + "\n"
    assert len(text.encode()) == 1024 * 1024 + 1
    (world.work / "metrics/one_byte_over.yaml").write_text(text)
    return ["metrics/one_byte_over.yaml"]


def _gen_deep_nesting(world: World) -> list[str]:
    depth = 200_000  # composing this recursed until the interpreter crashed
    (world.work / "metrics/deep.yaml").write_text(f"slug: deep\nagents: {'[' * depth}{']' * depth}\n")
    return ["metrics/deep.yaml"]


def _gen_many_unknown_keys(world: World) -> list[str]:
    keys = "".join(f"k{i}: {i}\n" for i in range(10_000))
    (world.work / "metrics/many_keys.yaml").write_text("id: 9001\nslug: many_keys\n" + keys)
    return ["metrics/many_keys.yaml"]


def _gen_symlink_outside(world: World) -> list[str]:
    # The target is a perfectly valid metric: following the link would be the bug.
    target = world.outside / "outside_link.yaml"
    target.write_text(VALID.read_text().replace("caller_greeted_by_name_1562", "outside_link"))
    (world.work / "metrics/outside_link.yaml").symlink_to(target)
    return ["metrics/outside_link.yaml"]


def _gen_symlink_loop(world: World) -> list[str]:
    (world.work / "metrics/loop.yaml").symlink_to("loop.yaml")
    return ["metrics/loop.yaml"]


def _gen_fifo(world: World) -> list[str]:
    os.mkfifo(world.work / "metrics/fifo.yaml")  # reading it would block forever
    return ["metrics/fifo.yaml"]


def _gen_slug_case_clash(world: World) -> list[str]:
    for slug, metric_id in (("Clash", 9001), ("clash", 9002)):
        text = VALID.read_text().replace("caller_greeted_by_name_1562", slug).replace("1562", str(metric_id))
        (world.work / f"metrics/{slug}.yaml").write_text(text)
    if len(list((world.work / "metrics").glob("*lash.yaml"))) < 2:
        pytest.skip("case-insensitive file system: the clash cannot even be written")
    return ["metrics/clash.yaml"]


def _gen_hostile_file_names(world: World) -> list[str]:
    names = [f"$(touch {PWNED}).yaml", f"-rf;touch {PWNED}.yaml", f"--output={PWNED}.yaml", "a b.yaml"]
    for name in names:
        (world.work / "metrics" / name).write_text(VALID.read_text())
    return [f"metrics/{n}" for n in names]


# name -> (generator, fragment of our message or None, can git commit it?)
GENERATED: dict[str, tuple[Callable[[World], list[str]], str | None, bool]] = {
    "generated/huge_prompt_10mb": (_gen_huge_prompt, "metric files are limited to 1 MiB", True),
    "generated/one_byte_over_1mib": (_gen_one_byte_over, "metric files are limited to 1 MiB", True),
    # Which guard trips first depends on the libyaml release (newer ones stop the scan at
    # 1,000 levels with their own words): what must hold is the refusal at file:line:col.
    "generated/deep_nesting_200k": (_gen_deep_nesting, None, True),
    "generated/many_unknown_keys": (_gen_many_unknown_keys, "more unknown field(s)", True),
    "generated/symlink_outside_repo": (_gen_symlink_outside, "symlink pointing outside the repository", True),
    "generated/symlink_loop": (_gen_symlink_loop, "symlink that cannot be resolved", True),
    "generated/fifo": (_gen_fifo, "is not a regular file", False),
    "generated/slug_case_clash": (
        _gen_slug_case_clash,
        "duplicate slug 'clash': also in metrics/Clash.yaml",
        True,
    ),
    "generated/hostile_file_names": (_gen_hostile_file_names, "does not match slug", True),
}


def _refused(result: CliResult, paths: list[str], fragment: str | None, located: bool = True) -> None:
    """Exit 1, a `file:line:col:` message (`file:` if not located) naming one of paths, no traceback.

    fragment is always our own wording, never a library's (a new PyYAML or jsonschema
    release must not fail the suite): None where the words depend on the library.
    """
    text = result.out + result.err
    assert result.code == 1, f"exit {result.code}\n{text}"
    if fragment is not None:
        assert fragment in text, text
    where = r":\d+:\d+: \S" if located else ":"
    patterns = [re.escape(p) + where for p in paths]
    assert any(re.search(pattern, text, re.MULTILINE) for pattern in patterns), (
        f"no file:line:col message names {paths}:\n{text}"
    )
    assert "Traceback" not in text and "internal error" not in text


# Cases that, were their guard broken, would hang (a FIFO), exhaust memory (an alias bomb)
# or crash the interpreter (deep nesting): they run in a child process with a timeout.
ISOLATED = {"metrics/alias_bomb.yaml", "generated/deep_nesting_200k", "generated/fifo"}


def _isolated(world: World, *args: str, env: dict[str, str | None]) -> CliResult:
    child_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    done = subprocess.run(
        [sys.executable, "-m", "cekura_gitops", *args],
        cwd=world.work,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=15,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def _check_metric_case(  # type: ignore[no-untyped-def]
    world: World, cli, case: str, paths: list[str], fragment: str | None, commit: bool
) -> None:
    if case in ISOLATED:
        cli = functools.partial(_isolated, world)
    if commit:
        world.git("add", "-A", "metrics")
        world.git("commit", "-qm", f"corpus {case}")
    before, traffic = world.snapshot(), world.traffic()
    try:
        _refused(cli("validate", env=world.env), paths, fragment)
        _refused(cli("plan", env=world.env), paths, fragment)
        _refused(cli("sync", env=world.env), paths, fragment)
        if commit:
            # Without a GitHub token: apply would report the failure on the dashboard issue
            # (test_apply_reports_refused_files_only_on_the_dashboard covers that).
            applied = cli("apply", env={**world.env, "GITHUB_TOKEN": None})
            # apply reports per file (`path: error — ...`), not always at a line.
            _refused(applied, paths, APPLY_FRAGMENT.get(case, fragment), located=False)
        assert world.traffic() == traffic, "a refused input reached the network"
        assert world.snapshot() == before
    finally:
        world.reset()


@pytest.mark.parametrize("case", METRIC_CASES)
def test_metric_case_is_refused_by_every_command(world: World, cli, case: str) -> None:  # type: ignore[no-untyped-def]
    paths = _install_metric_case(world, case)
    _check_metric_case(world, functools.partial(cli, cwd=world.work), case, paths, TABLE[case], commit=True)


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_case_is_refused_by_every_command(world: World, cli, case: str) -> None:  # type: ignore[no-untyped-def]
    generate, fragment, commit = GENERATED[case]
    paths = generate(world)
    _check_metric_case(world, functools.partial(cli, cwd=world.work), case, paths, fragment, commit=commit)


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_case_is_a_config_error_for_every_command(world: World, cli, case: str) -> None:  # type: ignore[no-untyped-def]
    fragment = TABLE[case]
    shutil.copyfile(CORPUS / case, world.work / "cekura-gitops.yaml")
    before, traffic = world.snapshot(), world.traffic()
    try:
        with pytest.raises(ConfigError) as raised:
            resolve(root=world.work, environ={})
        assert "cekura-gitops.yaml" in str(raised.value) and fragment in str(raised.value)
        for command in ("validate", "plan", "sync", "apply", "list"):
            result = cli(command, cwd=world.work, env=world.env)
            assert result.code == 1, result.err
            assert "cekura-gitops.yaml:" in result.err and fragment in result.err, result.err
        assert world.snapshot() == before
        assert world.traffic() == traffic
    finally:
        world.reset()


def test_apply_reports_refused_files_only_on_the_dashboard(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    cases = ("metrics/alias_bomb.yaml", "metrics/slug_leading_dash.yaml", "metrics/bom.yaml")
    paths = [p for case in cases for p in _install_metric_case(world, case)]
    world.git("add", "-A", "metrics")
    world.git("commit", "-qm", "three bad files")
    before, (cekura_calls, github_calls) = world.snapshot(), world.traffic()
    try:
        result = cli("apply", cwd=world.work, env=world.env)
        assert result.code == 1
        assert all(f"{p}:" in result.out for p in paths), result.out
        assert len(world.sandbox.requests) == cekura_calls, "a refused input reached Cekura"
        calls = world.github_since(github_calls)
        issue_call = re.compile(r"(GET|POST|PATCH) /repos/acme/metrics/issues\S*")
        assert calls and all(issue_call.fullmatch(c) for c in calls), calls
        assert world.snapshot() == before
    finally:
        world.reset()


def test_whole_corpus_in_one_process_exits_1_within_seconds(world: World) -> None:
    """A real process over every case at once, bounded by a timeout: nothing hangs or crashes."""
    try:
        for case in METRIC_CASES:
            _install_metric_case(world, case)
        generated = [(generate(world), fragment) for generate, fragment, _ in GENERATED.values()]
        before = world.snapshot()
        done = subprocess.run(
            [sys.executable, "-m", "cekura_gitops", "validate"],
            cwd=world.work,
            env={**os.environ, **world.env},
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert done.returncode == 1, done.stderr
        for case in METRIC_CASES:
            assert TABLE[case] in done.stderr, case
        for paths, fragment in generated:
            located = re.search(rf"{re.escape(paths[0])}:\d+:\d+: ", done.stderr)
            assert fragment in done.stderr if fragment else located, paths
        assert "Traceback" not in done.stderr
        assert world.snapshot() == before
    finally:
        world.reset()


# --- slugs never meet a shell ------------------------------------------------------------------

SLUG_PATTERN = schema.schema("metric")["properties"]["slug"]["pattern"]


@settings(max_examples=60, deadline=None)
@given(st.from_regex(SLUG_PATTERN, fullmatch=True))
def test_every_schema_valid_slug_is_a_safe_file_name_and_branch(slug: str) -> None:
    assert not slug.startswith("-") and "/" not in slug and ".." not in slug
    assert (Path("metrics") / f"{slug}.yaml").parent == Path("metrics")
    branch = f"cekura-gitops/optimise/{slug}"
    done = subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == branch


def test_the_package_never_runs_a_shell() -> None:
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py")}
    for pattern in (r"shell\s*=\s*True", r"os\.system\(", r"os\.popen\(", r"\bPopen\("):
        hits = [str(p) for p, text in sources.items() if re.search(pattern, text)]
        assert hits == [], f"{pattern} in {hits}"
