"""Run one job of a workflow file with the runner's contract, offline (see harness.py).

The job's steps run in order as the runner runs them: `run:` steps in bash with the job's
contexts (`github`, `vars`, `secrets`, `inputs`, `steps`), `uses:` steps of JavaScript
actions answered by stubs (actions/checkout: the workspace already is the checkout), and a
`uses:` of the cekura-gitops Action (`./` or `OWNER/cekura-gitops@REF`) run for real from
`action_dir` by an ActionHarness that shares the job's runner temp (as one job would).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.action.harness import ActionHarness, ActionRun, Evaluator, HarnessError, StepResult, load_yaml


class WorkflowJob(ActionHarness):
    def __init__(
        self,
        workflow: Path,
        job: str,
        workspace: Path,
        temp_dir: Path,
        *,
        action_dir: Path,
        vars: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        action_inputs: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(workspace, temp_dir, action_dir=action_dir, **kwargs)
        self.workflow = load_yaml(workflow)
        if job not in (self.workflow.get("jobs") or {}):
            raise HarnessError(f"{workflow.name} has no job {job!r}")
        self.job = self.workflow["jobs"][job]
        self.action = {"runs": {"steps": self.job["steps"]}}
        self.vars, self.secrets = dict(vars or {}), dict(secrets or {})
        # Inputs added to every use of the Action: what a test must point elsewhere (the
        # sandbox's URL), and nothing else.
        self.action_inputs = dict(action_inputs or {})
        self.nested = ActionHarness(workspace, temp_dir, action_dir=action_dir, **kwargs)
        self.action_runs: list[ActionRun] = []
        self._event: tuple[str, dict[str, Any]] = ("workflow_dispatch", {})

    def runs_on(self, event_name: str, event: Mapping[str, Any]) -> bool:
        """The job's `if:`, evaluated as the runner does before any step."""
        github = {
            "event_name": event_name,
            "event": dict(event),
            "repository": self.repository,
            "ref": event.get("ref", "refs/heads/main"),
        }
        contexts = {
            "github": github,
            "vars": self.vars,
            "secrets": self.secrets,
            "inputs": event.get("inputs"),
        }
        return Evaluator(contexts).condition(self.job.get("if"))

    def run(  # type: ignore[override]
        self,
        *,
        event_name: str,
        event: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
    ) -> ActionRun:
        if not self.runs_on(event_name, event):
            raise HarnessError(f"the job's if: skips it on {event_name} with vars {self.vars}")
        payload = dict(event)
        self._event = (event_name, payload)
        self.extra_contexts = {"vars": self.vars, "secrets": self.secrets}
        self.action_runs = []
        return super().run(dict(payload.get("inputs") or {}), event_name=event_name, event=payload, env=env)

    def _inputs(self, given: Mapping[str, str], github: Mapping[str, Any]) -> dict[str, str]:
        return dict(given)  # a workflow's `inputs` context: workflow_dispatch's inputs

    def _uses(self, result: StepResult, env: Mapping[str, str]) -> None:
        ref = result.uses or ""
        if ref != "./" and not ref.split("@", 1)[0].endswith("/cekura-gitops"):
            super()._uses(result, env)
            return
        event_name, event = self._event
        inputs = {**result.with_, **self.action_inputs}
        run = self.nested.run(inputs, event_name=event_name, event=event, env=result.env)
        self.action_runs.append(run)
        result.outputs = dict(run.outputs)
        result.stdout, result.stderr, result.summary = run.stdout, run.stderr, run.summary
        result.outcome = "success" if run.ok else "failure"


def merge_group_event(base_sha: str, head_sha: str, *, repository: str = "acme/metrics") -> dict[str, Any]:
    return {
        "action": "checks_requested",
        "merge_group": {
            "head_sha": head_sha,
            "head_ref": f"refs/heads/gh-readonly-queue/main/pr-7-{base_sha}",
            "base_sha": base_sha,
            "base_ref": "refs/heads/main",
            "head_commit": {"id": head_sha, "message": "Merge pull request #7"},
        },
        "ref": f"refs/heads/gh-readonly-queue/main/pr-7-{base_sha}",
        "repository": {"full_name": repository, "default_branch": "main"},
    }
