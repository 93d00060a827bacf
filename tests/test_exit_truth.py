"""Exit codes tell the truth (issue 25): when pachd's answer to the transaction or to a prune's
delete is lost, pachd is read back before the error line says what was applied.

Through `invoke` on a real Docker Engine, a real registry and the pachd double (2.7 and 2.12); the
connection is cut by tests/fault_proxy.py in front of the double, and what the line says is checked
against the cluster read back through python-pachyderm."""
from __future__ import annotations

import threading
import time

import pytest

from fault_proxy import CUT, HOLD, FaultProxy
from project_helpers import make_project
from test_faults import interrupt, one_clean_error

PRUNED = (("alpha", "images"), ("bravo", "alpha"), ("charlie", "bravo"))  # deleted charlie, bravo, alpha


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='owner = "team-truth"\ntag = "inputs"\n', pipelines=(("edges", "images"), *PRUNED),
    )


def versions(client) -> dict[str, int]:
    return {info.pipeline.name: info.version for info in client.list_pipeline()}


def through(proxy) -> dict[str, str]:
    return {"PACHD_ADDRESS": f"grpc://{proxy.address}"}


def answer_lost_once(proxy, applied, close: bool = False) -> dict[str, bool]:
    """Once the proxy has passed the request on and `applied()` is true (pachd acted on it),
    drop the connection whose answer it holds (close: and refuse every later one)."""
    seen = {"applied": False}

    def run() -> None:
        if proxy.fired.wait(240):
            deadline = time.monotonic() + 30
            while not applied() and time.monotonic() < deadline:
                time.sleep(0.05)
            seen["applied"] = applied()
        (proxy.close if close else proxy.cut)()

    threading.Thread(target=run, daemon=True).start()
    return seen


def second_version(project) -> None:
    """edges changed, the three others deployed as they were: the next deploy updates edges only."""
    assert project.invoke("deploy").code == 0
    for name, _ in PRUNED:
        (project.root / f"templates/{name}.json.j2").unlink()
    project.pipeline("edges", "images", description="v2")
    project.commit("edges v2, no alpha, bravo, charlie")


# -- the transaction ----------------------------------------------------------------------


def test_a_transaction_whose_answer_is_lost_is_read_back_as_applied(project, cluster, client):
    second_version(project)
    proxy = FaultProxy(cluster.address, HOLD, from_client=b"BatchTransaction")
    try:
        seen = answer_lost_once(proxy, lambda: cluster.pipeline_versions().get("edges") == 2)
        result = project.invoke("deploy", env=through(proxy))
    finally:
        proxy.close()
    assert seen["applied"]
    line = one_clean_error(
        result, 13, "the deploy transaction failed: UNAVAILABLE",
        "read back from pachd: applied: edges version 2; not applied: none; unknown: none",
    )
    assert "nothing was changed" not in line
    assert versions(client) == {"edges": 2, "alpha": 1, "bravo": 1, "charlie": 1}


def test_a_lost_answer_with_pachd_gone_is_unknown_not_nothing_applied(project, cluster, client):
    second_version(project)
    proxy = FaultProxy(cluster.address, HOLD, from_client=b"BatchTransaction")
    try:
        seen = answer_lost_once(proxy, lambda: cluster.pipeline_versions().get("edges") == 2, close=True)
        result = project.invoke("deploy", env=through(proxy))
    finally:
        proxy.close()
    assert seen["applied"]
    line = one_clean_error(
        result, 13, "pachd did not answer when read back, so whether the transaction was applied is unknown: edges",
        "check with `invoke status`",
    )
    assert "nothing was changed" not in line and "not applied" not in line
    assert versions(client) == {"edges": 2, "alpha": 1, "bravo": 1, "charlie": 1}


def test_a_transaction_cut_before_pachd_got_it_is_read_back_as_not_applied(project, cluster, client):
    second_version(project)
    proxy = FaultProxy(cluster.address, CUT, from_client=b"BatchTransaction")
    try:
        result = project.invoke("deploy", env=through(proxy))
    finally:
        proxy.close()
    assert proxy.fired.is_set()
    one_clean_error(
        result, 8, "the deploy transaction failed: UNAVAILABLE",
        "read back from pachd: the transaction was not applied, no pipeline was changed",
    )
    assert versions(client) == {"edges": 1, "alpha": 1, "bravo": 1, "charlie": 1}


def test_ctrl_c_while_the_answer_is_held_says_what_was_applied(project, cluster, client):
    second_version(project)
    proxy = FaultProxy(cluster.address, HOLD, from_client=b"BatchTransaction")

    def applied(stderr: str) -> bool:
        return proxy.fired.wait(120) and _eventually(lambda: cluster.pipeline_versions().get("edges") == 2)

    try:
        result = interrupt(project, "deploy", env=through(proxy), when=applied)
    finally:
        proxy.close()
    one_clean_error(
        result, 130, "interrupted during the transaction",
        "read back from pachd: applied: edges version 2; not applied: none; unknown: none",
    )
    assert versions(client)["edges"] == 2


def _eventually(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- prune: each delete done, not done or unknown ------------------------------------------


def pruning(project) -> None:
    """All four deployed; the templates of alpha, bravo and charlie dropped (the image stays)."""
    assert project.invoke("deploy").code == 0
    for name, _ in PRUNED:
        (project.root / f"templates/{name}.json.j2").unlink()
    project.commit("drop alpha, bravo, charlie")


def test_a_delete_whose_answer_is_lost_is_looked_up_and_reported_done(project, cluster, client):
    pruning(project)
    proxy = FaultProxy(cluster.address, HOLD, from_client=b"bravo")  # its DeletePipelineRequest
    try:
        seen = answer_lost_once(proxy, lambda: "bravo" not in cluster.pipeline_versions())
        result = project.invoke("prune", env=through(proxy))
    finally:
        proxy.close()
    assert seen["applied"]
    one_clean_error(
        result, 13, "DeletePipeline bravo failed: UNAVAILABLE",
        "deleted: charlie, bravo; not deleted: alpha; unknown: none; rerun to prune the rest",
    )
    assert versions(client) == {"edges": 1, "alpha": 1}


def test_a_delete_cut_before_pachd_got_it_is_reported_not_done(project, cluster, client):
    pruning(project)
    proxy = FaultProxy(cluster.address, CUT, from_client=b"bravo")
    try:
        result = project.invoke("prune", env=through(proxy))
    finally:
        proxy.close()
    assert proxy.fired.is_set()
    one_clean_error(
        result, 13, "DeletePipeline bravo failed: UNAVAILABLE",
        "deleted: charlie; not deleted: bravo, alpha; unknown: none; rerun to prune the rest",
    )
    assert versions(client) == {"edges": 1, "alpha": 1, "bravo": 1}


def test_a_delete_whose_answer_is_lost_with_pachd_gone_is_unknown(project, cluster, client):
    pruning(project)
    proxy = FaultProxy(cluster.address, HOLD, from_client=b"bravo")
    try:
        seen = answer_lost_once(proxy, lambda: "bravo" not in cluster.pipeline_versions(), close=True)
        result = project.invoke("prune", env=through(proxy))
    finally:
        proxy.close()
    assert seen["applied"]
    one_clean_error(
        result, 13, "DeletePipeline bravo failed: UNAVAILABLE",
        "deleted: charlie; not deleted: alpha; unknown: bravo; check with `invoke status`, then rerun",
    )
    assert versions(client) == {"edges": 1, "alpha": 1}


def test_the_first_delete_cut_deletes_nothing_and_exits_8(project, cluster, client):
    pruning(project)
    proxy = FaultProxy(cluster.address, CUT, from_client=b"charlie")
    try:
        result = project.invoke("prune", env=through(proxy))
    finally:
        proxy.close()
    one_clean_error(
        result, 8, "DeletePipeline charlie failed: UNAVAILABLE",
        "deleted: none; not deleted: charlie, bravo, alpha; unknown: none",
    )
    assert versions(client) == {"edges": 1, "alpha": 1, "bravo": 1, "charlie": 1}


def test_deploy_prune_cut_after_the_transaction_says_the_deploy_was_applied(project, cluster, client):
    """The transaction applied, then the first delete fails without deleting: exit 13, not 8."""
    second_version(project)
    proxy = FaultProxy(cluster.address, CUT, from_client=b"charlie")
    try:
        result = project.invoke("deploy", "--prune", env=through(proxy))
    finally:
        proxy.close()
    one_clean_error(
        result, 13, "DeletePipeline charlie failed: UNAVAILABLE",
        "deleted: none; not deleted: charlie, bravo, alpha; unknown: none",
        "the deploy was applied: edges version 2",
    )
    assert versions(client) == {"edges": 2, "alpha": 1, "bravo": 1, "charlie": 1}


def second_delete_started(cluster):
    return lambda stderr: _eventually(lambda: cluster.calls.count("DeletePipeline") >= 2)


def test_ctrl_c_during_a_delete_waits_for_it_and_says_it_was_done(project, cluster, client):
    pruning(project)
    cluster.set_delay(2, method="DeletePipeline")
    result = interrupt(project, "prune", when=second_delete_started(cluster))
    one_clean_error(
        result, 130, "interrupted: `prune` stopped before it finished",
        "deleted: charlie, bravo; not deleted: alpha; unknown: none",
    )
    assert versions(client) == {"edges": 1, "alpha": 1}


def test_ctrl_c_during_deploy_prune_says_what_was_applied_and_deleted(project, cluster, client):
    second_version(project)
    cluster.set_delay(2, method="DeletePipeline")
    result = interrupt(project, "deploy", "--prune", when=second_delete_started(cluster))
    one_clean_error(
        result, 130, "interrupted during the prune", "the deploy was applied: edges version 2",
        "deleted: charlie, bravo; not deleted: alpha; unknown: none",
    )
    assert versions(client) == {"edges": 2, "alpha": 1}
