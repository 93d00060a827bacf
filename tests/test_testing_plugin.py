"""invoke_pachyderm.testing, as a project's own test suite uses it (docs/testing.md)."""
import subprocess
import sys
import textwrap

USER_TESTS = textwrap.dedent(
    """
    import python_pachyderm
    from python_pachyderm.proto.v2.pps import pps_pb2

    def client(pachd):
        return python_pachyderm.Client(host=pachd.host, port=pachd.port)

    def test_a_pipeline_is_created(pachd):
        c = client(pachd)
        c.create_repo("images")
        c.create_pipeline("edges", transform=pps_pb2.Transform(image="reg/edges:1", cmd=["x"]),
                          input=pps_pb2.Input(pfs=pps_pb2.PFSInput(repo="images", glob="/*")))
        assert [p.pipeline.name for p in c.list_pipeline()] == ["edges"]

    def test_the_next_test_starts_empty(pachd):
        assert list(client(pachd).list_pipeline()) == []
        assert list(client(pachd).list_repo()) == []

    def test_the_version_is_the_configured_one(pachd, pachd_address):
        v = client(pachd).get_remote_version()
        assert (v.major, v.minor) == (2, 7)
        assert pachd_address == f"{pachd.host}:{pachd.port}"
    """
)


def test_a_project_tests_its_deploys_against_the_double_with_the_plugin(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["invoke_pachyderm.testing.pytest_plugin"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\npachd_double_version = 2.7.8\n")
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_public_import_is_the_double():
    from invoke_pachyderm.testing import PachdDouble
    from invoke_pachyderm.testing.pachd_double.server import PachdDouble as server_double

    assert PachdDouble is server_double
