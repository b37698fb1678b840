"""What plan and pull read from Cekura: lists per project, details where the list hides fields."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from cekura_gitops.cekura import CekuraClient
from cekura_gitops.commands.pull import _by_project
from cekura_gitops.live import fetch_live
from cekura_gitops.metric_files import parse_metric
from cekura_gitops.settings import resolve

LISTS = "/test_framework/v2/metrics/"


def _file(metric_id: int, project: int, *, code: bool) -> object:
    slug = f"metric_{metric_id}"
    body = "type: custom_code\ncustom_code: |-\n  _result = True\n" if code else "type: llm_judge\n"
    text = (
        f"id: {metric_id}\nslug: {slug}\nproject: {project}\nname: Metric {metric_id}\n{body}"
        "eval_type: binary\ndescription: Score TRUE if the agent did it.\n"
    )
    return parse_metric(text, f"metrics/{slug}.yaml", file_stem=slug)


def _live(metric_id: int, project: int) -> dict[str, object]:
    return {"id": metric_id, "slug": f"metric_{metric_id}", "project": project, "name": f"Metric {metric_id}"}


def test_code_details_are_fetched_while_the_project_lists_still_come_in() -> None:
    """A file managing custom_code needs its detail whatever the lists say: the GET goes
    out with the lists, not after them (plan at 10,000 files waited ~1 s for the lists)."""
    overlapped: list[bool] = []
    detail_arrived = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == LISTS:
            project = int(request.url.params["project_id"])
            if project == 2:
                # The second list answers only once the detail GET has come in (or gives up).
                overlapped.append(detail_arrived.wait(10))
            return httpx.Response(200, json=[_live(10 + project, project)])
        assert request.url.path == f"{LISTS}11/", request.url
        detail_arrived.set()
        return httpx.Response(
            200, json={**_live(11, 1), "type": "custom_code", "custom_code": "_result = True"}
        )

    files = [_file(11, 1, code=True), _file(12, 2, code=False)]
    client = CekuraClient("https://cekura.test", "ck_test", transport=httpx.MockTransport(handler))
    with client:
        live = fetch_live(client, files, concurrency=4)  # type: ignore[arg-type]
    assert overlapped == [True]
    assert live.by_id[11]["custom_code"] == "_result = True"
    assert set(live.by_id) == {11, 12}


def test_a_file_the_lists_do_not_show_gets_its_detail_and_a_404_drops_it() -> None:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(request.url.path)
        if request.url.path == LISTS:
            return httpx.Response(200, json=[])
        if request.url.path == f"{LISTS}21/":
            return httpx.Response(200, json=_live(21, 1))
        return httpx.Response(404, json={"detail": "Not found."})

    files = [_file(21, 1, code=False), _file(22, 1, code=True)]
    with CekuraClient("https://cekura.test", "ck_test", transport=httpx.MockTransport(handler)) as client:
        live = fetch_live(client, files, concurrency=4)  # type: ignore[arg-type]
    assert set(live.by_id) == {21}
    assert sorted(requested) == [LISTS, f"{LISTS}21/", f"{LISTS}22/"]


def test_pull_lists_its_projects_at_once(tmp_path: Path) -> None:
    """pull (no --project) lists every project it already has files for: together, not one
    after the other (four lists of 2,500 metrics took ~1 s each)."""
    overlapped: list[bool] = []
    third_list = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == LISTS, request.url
        project = int(request.url.params["project_id"])
        if project == 2:
            overlapped.append(third_list.wait(10))  # answers once the third list came in
        elif project == 3:
            third_list.set()
        return httpx.Response(200, json=[_live(10 + project, project)])

    files = [_file(10 + p, p, code=False) for p in (1, 2, 3)]
    settings = resolve(root=tmp_path, environ={})
    with CekuraClient("https://cekura.test", "ck_test", transport=httpx.MockTransport(handler)) as client:
        wanted = _by_project(client, settings, None, files)  # type: ignore[arg-type]
    assert overlapped == [True]
    assert [m["id"] for m in wanted] == [11, 12, 13]
