"""The command line: options -> Settings -> `commands.<verb>.<verb>(...)`; exit codes here only.

Heavy modules (httpx, git, jsonschema, the sandbox) are imported inside the commands, so
`cekura-gitops --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cekura_gitops import __version__
from cekura_gitops.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    GitOpsError,
    MetricValidationError,
)
from cekura_gitops.limits import MAX_CONCURRENCY

if TYPE_CHECKING:  # imported inside the commands at run time: `--help` stays fast
    from cekura_gitops.console import Console
    from cekura_gitops.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
_KEY = "cekura_gitops_globals"


# A global option's value as click gives it: a path, the --json/-v flags, --concurrency.
OptionValue = str | bool | int | None


def _remember(ctx: click.Context, param: click.Parameter, value: OptionValue) -> OptionValue:
    # Global options are accepted before and after the command name; the last one wins.
    store: dict[str, OptionValue] = ctx.find_root().meta.setdefault(_KEY, {})
    if value not in (None, False, ()) and param.name is not None:
        store[param.name] = value
    return value


def _globals(ctx: click.Context) -> dict[str, OptionValue]:
    store: dict[str, OptionValue] = ctx.find_root().meta.get(_KEY, {})
    return store


def global_options(func: F) -> F:
    options = [
        click.option(
            "--metrics-dir",
            metavar="DIR",
            expose_value=False,
            callback=_remember,
            help="Folder of metric files (default: metrics).",
        ),
        click.option(
            "--json",
            "json_output",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_remember,
            help="Machine-readable JSON on stdout; human text goes to stderr.",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_remember,
            help="More detail, and a traceback on internal errors.",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, MAX_CONCURRENCY),
            expose_value=False,
            callback=_remember,
            help="Metrics handled at once (default 8).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings_and_console(ctx: click.Context, *, config_file: bool = True) -> tuple[Settings, Console]:
    from cekura_gitops import crashpoints
    from cekura_gitops import settings as settings_mod
    from cekura_gitops.console import Console

    store = _globals(ctx)
    metrics_dir, concurrency = store.get("metrics_dir"), store.get("concurrency")
    settings = settings_mod.resolve(
        metrics_dir=metrics_dir if isinstance(metrics_dir, str) else None,
        json_output=bool(store.get("json_output")),
        verbose=bool(store.get("verbose")),
        concurrency=concurrency if type(concurrency) is int else None,
        config_file=config_file,
    )
    crashpoints.configure(settings.crash_at)
    console = Console(
        json_output=settings.json_output,
        verbose=settings.verbose,
        github_actions=settings.github_actions,
        secrets=settings.secrets,
    )
    return settings, console


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
METRIC_OPTION = click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="ID|SLUG",
    help="Only this metric (repeatable).",
)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="cekura-gitops")
@global_options
def cli() -> None:
    """Cekura metric prompts as code.

    Each metric is a YAML file under metrics/. `sync` runs Cekura's optimiser and opens a
    pull request per improved metric; merging it runs `apply`, which PATCHes exactly what
    changed after checking nobody edited the live metric behind git's back.

    \b
    Start here:
      cekura-gitops demo                 # the whole loop against a local sandbox
      cekura-gitops init                 # add the workflows to this repository
      cekura-gitops pull --project 1376  # import live metrics into metrics/
      cekura-gitops plan                 # what differs between git and Cekura

    Environment: CEKURA_API_KEY, CEKURA_API_URL, GITHUB_TOKEN, GITHUB_REPOSITORY,
    GITHUB_API_URL. Exit codes: 0 ok, 1 failure, 2 changes (plan --detailed-exitcode),
    3 internal error, 64 usage error, 130 interrupted.
    """


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path())
@global_options
@click.pass_context
def validate(ctx: click.Context, paths: tuple[str, ...]) -> int:
    """Check metric files offline (schema and semantics).

    Reports every problem as path:line:col: message (and as annotations under GitHub
    Actions). Exit 0 when all files are valid, 1 otherwise.

    \b
    Examples:
      cekura-gitops validate
      cekura-gitops validate metrics/caller_greeted_by_name_1562.yaml
      cekura-gitops validate --json
    """
    from cekura_gitops.commands.validate import validate as run

    settings, console = _settings_and_console(ctx)
    return run(settings, console, paths)


@cli.command(context_settings=CONTEXT)
@click.option("--project", type=int, metavar="ID", help="Cekura project to import from.")
@METRIC_OPTION
@click.option("--force", is_flag=True, help="Overwrite files that have uncommitted changes.")
@global_options
@click.pass_context
def pull(ctx: click.Context, project: int | None, metrics: tuple[str, ...], force: bool) -> int:
    """Import live metrics into metrics/<slug>.yaml.

    New metrics get a new file; existing files have only their differing fields rewritten
    (comments and layout stay). Files with uncommitted changes are left alone unless
    --force.

    \b
    Examples:
      cekura-gitops pull --project 1376
      cekura-gitops pull --metric caller_greeted_by_name_1562
    """
    from cekura_gitops.commands.pull import pull as run

    settings, console = _settings_and_console(ctx)
    return run(settings, console, project=project, selectors=metrics, force=force)


@cli.command(context_settings=CONTEXT)
@METRIC_OPTION
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="markdown renders a pull request comment.",
)
@click.option("--score", is_flag=True, help="Score changed prompts on the Lab's reviews (costs credits).")
@click.option("--offline", is_flag=True, help="Do not contact Cekura (validate and list only).")
@click.option(
    "--comment", is_flag=True, help="Post or update one sticky comment on this event's pull request."
)
@global_options
@click.pass_context
def plan(
    ctx: click.Context,
    metrics: tuple[str, ...],
    detailed_exitcode: bool,
    fmt: str,
    score: bool,
    offline: bool,
    comment: bool,
) -> int:
    """Show what differs between the repository and live Cekura. Read-only.

    Each metric is `in sync`, `changed` (with a diff per field), `missing live` or
    `unmanaged` (live, but no file).

    \b
    Examples:
      cekura-gitops plan
      cekura-gitops plan --detailed-exitcode   # 2 when anything would change
      cekura-gitops plan --format markdown     # for a PR comment
    """
    from cekura_gitops.commands.plan import plan as run

    settings, console = _settings_and_console(ctx)
    return run(
        settings,
        console,
        selectors=metrics,
        detailed_exitcode=detailed_exitcode,
        fmt=fmt,
        score=score,
        offline=offline,
        comment=comment,
    )


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        k, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter("use K/N, e.g. 1/4") from None
    if not 1 <= k <= n:
        raise click.BadParameter("K must be between 1 and N")
    return k, n


SHARD_OPTION = click.option(
    "--shard", callback=_shard, metavar="K/N", help="Only shard K of N (stable partition by slug)."
)


@cli.command(context_settings=CONTEXT)
@METRIC_OPTION
@SHARD_OPTION
@click.option("--no-push", is_flag=True, help="Commit proposal branches locally; do not push.")
@click.option("--no-pr", is_flag=True, help="Do not open or update pull requests.")
@click.option("--force", is_flag=True, help="Optimise even without new Lab feedback.")
@global_options
@click.pass_context
def sync(
    ctx: click.Context,
    metrics: tuple[str, ...],
    shard: tuple[int, int] | None,
    no_push: bool,
    no_pr: bool,
    force: bool,
) -> int:
    """Run Cekura's optimiser and propose improvements as branches and pull requests.

    For each metric with optimiser.enabled: if live differs from git, report drift;
    otherwise run the optimiser and, when the proposal beats the baseline, commit it to
    cekura-gitops/optimise/<slug> and open or update its pull request.

    \b
    Examples:
      cekura-gitops sync
      cekura-gitops sync --metric caller_greeted_by_name_1562 --no-pr
      cekura-gitops sync --shard 2/4 --json
    """
    from cekura_gitops.commands.sync import sync as run

    settings, console = _settings_and_console(ctx)
    return run(
        settings,
        console,
        selectors=metrics,
        shard=shard,
        push=not no_push,
        open_prs=not no_pr,
        force=force,
    )


@cli.command(context_settings=CONTEXT)
@click.option("--base", metavar="REV", help="Old commit (default: HEAD~1, or the push event's before).")
@click.option("--head", metavar="REV", help="New commit (default: HEAD, or the push event's after).")
@METRIC_OPTION
@click.option("--force", is_flag=True, help="Overwrite live metrics changed behind git's back.")
@click.option("--dry-run", is_flag=True, help="Show what would be applied; change nothing.")
@global_options
@click.pass_context
def apply(
    ctx: click.Context,
    base: str | None,
    head: str | None,
    metrics: tuple[str, ...],
    force: bool,
    dry_run: bool,
) -> int:
    """Apply the metric changes between two commits to Cekura.

    Three-way guard per metric: live equal to the head file is `in-sync`; live equal to
    the base file is PATCHed with exactly the changed fields, then verified; anything else
    is a `conflict` (someone edited the live metric) and is refused unless --force.

    \b
    Examples:
      cekura-gitops apply                          # the last commit (a merge)
      cekura-gitops apply --base main~3 --head main --dry-run
    """
    from cekura_gitops.commands.apply import apply as run

    settings, console = _settings_and_console(ctx)
    return run(settings, console, base=base, head=head, selectors=metrics, force=force, dry_run=dry_run)


@cli.command(name="list", context_settings=CONTEXT)
@SHARD_OPTION
@global_options
@click.pass_context
def list_(ctx: click.Context, shard: tuple[int, int] | None) -> int:
    """List the managed metrics (slug, id, path), e.g. for a GitHub Actions matrix.

    \b
    Examples:
      cekura-gitops list
      cekura-gitops list --json --shard 1/4
    """
    from cekura_gitops.commands.listing import list_metrics as run

    settings, console = _settings_and_console(ctx)
    return run(settings, console, shard=shard)


@cli.command(context_settings=CONTEXT)
@global_options
@click.pass_context
def doctor(ctx: click.Context) -> int:
    """Check the set-up end to end and say how to fix each problem.

    \b
    Example:
      cekura-gitops doctor
    """
    from cekura_gitops.commands.doctor import doctor as run
    from cekura_gitops.errors import ConfigError

    try:
        settings, console = _settings_and_console(ctx)
        config_error = None
    except ConfigError as err:
        # A broken cekura-gitops.yaml fails one check; the rest run with the defaults (an
        # error in the environment or flags still stops here: nothing could be checked).
        settings, console = _settings_and_console(ctx, config_file=False)
        config_error = str(err)
    return run(settings, console, config_error=config_error)


@cli.command(name="init", context_settings=CONTEXT)
@click.option(
    "--action",
    metavar="OWNER/cekura-gitops@REF",
    help="The Action reference to write, as given (default: the commit this release was built from).",
)
@click.option("--branch", metavar="NAME", help="The default branch (default: asked of the remote).")
@click.option("--force", is_flag=True, help="Overwrite workflows that differ from what init writes.")
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
@click.option("--pull", "pull_", is_flag=True, help="Also import the project's metrics (needs --project).")
@click.option("--project", type=int, metavar="ID", help="Cekura project for --pull.")
@global_options
@click.pass_context
def init_(
    ctx: click.Context,
    action: str | None,
    branch: str | None,
    force: bool,
    dry_run: bool,
    pull_: bool,
    project: int | None,
) -> int:
    """Set up this repository: the optimise, plan and apply workflows and cekura-gitops.yaml.

    Writes .github/workflows/cekura-optimise.yml, cekura-plan.yml and cekura-apply.yml for
    this repository's default branch (asked of the remote, else of the GitHub API) and
    metrics folder, using the Action pinned to a commit; cekura-gitops.yaml only when it is
    missing. A workflow that differs is left alone (exit 1) unless --force; running init
    again changes nothing. Ends with the next steps: secrets, the CEKURA_ENABLED variable,
    the GitHub App.

    \b
    Examples:
      cekura-gitops init
      cekura-gitops init --dry-run
      cekura-gitops init --action acme/cekura-gitops@0123456789abcdef0123456789abcdef01234567
      cekura-gitops --metrics-dir prompts init --pull --project 1376
      cekura-gitops init --json
    """
    from cekura_gitops.commands.init import init as run

    settings, console = _settings_and_console(ctx)
    return run(
        settings,
        console,
        action=action,
        branch=branch,
        force=force,
        dry_run=dry_run,
        pull=pull_,
        project=project,
    )


@cli.command(context_settings=CONTEXT)
@click.option("--keep", is_flag=True, help="Keep the temporary repository and print its path.")
@global_options
@click.pass_context
def demo(ctx: click.Context, keep: bool) -> int:
    """Run the whole loop locally: no credentials, no network.

    Starts the bundled Cekura sandbox on 127.0.0.1, makes a temporary repository with a
    bare origin, then pulls, syncs (proposal branch and PR body), merges, applies, and
    shows a conflict after a simulated dashboard edit.

    \b
    Example:
      cekura-gitops demo
    """
    from cekura_gitops.commands.demo import demo as run

    settings, console = _settings_and_console(ctx)
    return run(settings, console, keep=keep)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI inside the one error boundary."""
    from cekura_gitops.settings import secret_values

    secrets = secret_values()
    if _under_actions():
        from cekura_gitops.actions import mask_all

        # stderr: stdout may be a --json document; the runner reads commands from both.
        mask_all(secrets, sys.stderr)
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            standalone_mode=False,
            prog_name="cekura-gitops",
        )
    except click.exceptions.Abort:
        _print_error("interrupted", secrets)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _print_error("interrupted", secrets)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as err:
        return int(err.exit_code)
    except click.exceptions.ClickException as err:
        err.show()
        return EXIT_USAGE
    except MetricValidationError as err:
        for problem in err.problems:
            _print_error(str(problem), secrets, file=problem.path, line=problem.line)
        return err.exit_code
    except GitOpsError as err:
        _print_error(f"error: {err}", secrets)
        return err.exit_code
    except Exception:  # noqa: BLE001 - the boundary: anything else is a bug
        if verbose:
            import traceback  # only here: importing it up front slows every start

            _print_error(traceback.format_exc(), secrets)
        else:
            kind = sys.exc_info()[0]
            name = kind.__name__ if kind else "error"
            _print_error(
                f"internal error ({name}); this is a bug in cekura-gitops. "
                "Re-run with --verbose for details and report it.",
                secrets,
            )
        return EXIT_INTERNAL
    finally:
        _close_connections()
    return int(result or 0)


def _close_connections() -> None:
    # GitHub clients live for the whole command (one identity, one write pacer per run).
    module = sys.modules.get("cekura_gitops.githubaccess")
    if module is not None:
        module.close_all()


def _under_actions() -> bool:
    from cekura_gitops.settings import under_actions

    return under_actions()


def _print_error(
    text: str, secrets: tuple[str, ...], *, file: str | None = None, line: int | None = None
) -> None:
    from cekura_gitops.redaction import Redactor

    text = Redactor(secrets)(text)
    if _under_actions():
        from cekura_gitops.actions import annotation, neutralise

        # Error text can quote a server's body: no line of it may run as a workflow command.
        sys.stderr.write(neutralise(text.rstrip("\n")) + "\n")
        sys.stderr.write(annotation("error", text, file=file, line=line) + "\n")
    else:
        sys.stderr.write(text.rstrip("\n") + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["cli", "main"]
