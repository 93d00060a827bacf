"""Reporter: secrets never reach a terminal, log or file; --json prints one JSON document."""
from __future__ import annotations

import io
import json

import pytest

from invoke_pachyderm.core.output import Reporter

PASSWORD = "hunter2-Pa55word"
TOKEN = "ghp_0123456789abcdefTOKEN"


def reporter(json_mode: bool = False, environ: dict | None = None, secrets=(PASSWORD, TOKEN)):
    out, log = io.StringIO(), io.StringIO()
    return Reporter(json_mode=json_mode, secrets=secrets, log_stream=log, out_stream=out, environ=environ or {}), out, log


def test_redact_replaces_every_occurrence_of_every_secret():
    rep, _, _ = reporter()
    text = f"login {PASSWORD} then {TOKEN} and again {PASSWORD}"
    assert rep.redact(text) == "login *** then *** and again ***"


def test_longer_secret_is_redacted_whole_when_it_contains_a_shorter_one():
    rep, _, _ = reporter(secrets=("abc", "xxabcxx"))
    assert rep.redact("xxabcxx abc") == "*** ***"


def test_empty_and_none_secrets_are_ignored():
    rep, _, _ = reporter(secrets=("", None, PASSWORD))
    assert rep.secrets == [PASSWORD]
    assert rep.redact("nothing to hide") == "nothing to hide"


def test_logs_are_redacted():
    rep, out, log = reporter()
    rep.info(f"docker login -p {PASSWORD}")
    rep.log_for("edges")(f"token={TOKEN}")
    with rep.group(f"push with {PASSWORD}"):
        rep.info("inside")
    rep.error(f"registry refused {PASSWORD}")
    text = log.getvalue()
    assert PASSWORD not in text and TOKEN not in text
    assert "docker login -p ***" in text
    assert "[edges] token=***" in text
    assert "== push with ***" in text
    assert "error: registry refused ***" in text
    assert out.getvalue() == ""  # logs go to the log stream only


def test_secret_added_later_is_redacted_from_then_on():
    rep, _, log = reporter(secrets=())
    rep.add_secret("late-secret")
    rep.info("the late-secret is here")
    assert log.getvalue() == "the *** is here\n"


def test_human_results_are_redacted():
    rep, out, _ = reporter()
    rep.result({"password": PASSWORD}, f"pushed with {PASSWORD}")
    assert out.getvalue() == "pushed with ***\n"


def test_json_results_are_redacted():
    rep, out, _ = reporter(json_mode=True)
    rep.result({"password": PASSWORD, "nested": [{"t": f"Bearer {TOKEN}"}]}, "ignored human text")
    document = json.loads(out.getvalue())
    assert document == {"password": "***", "nested": [{"t": "Bearer ***"}]}


@pytest.mark.parametrize("secret", ['pa"ss\\word', "pässwörd", "tab\there", "line\nbreak"])
def test_json_results_are_redacted_when_the_secret_needs_escaping(secret):
    rep, out, _ = reporter(json_mode=True, secrets=(secret,))
    rep.result({"password": secret, "url": f"https://u:{secret}@host"}, "")
    text = out.getvalue()
    assert secret not in text and json.dumps(secret)[1:-1] not in text
    assert json.loads(text) == {"password": "***", "url": "https://u:***@host"}


def test_json_mode_prints_exactly_one_json_document_on_stdout(capsys):
    environ = {"GITHUB_ACTIONS": "true"}
    rep = Reporter(json_mode=True, secrets=[PASSWORD], environ=environ)
    rep.add_secret(TOKEN)
    rep.info("building")
    with rep.group("push"):
        rep.log_for("edges")("pushed")
    rep.error("something odd")
    rep.result({"images": {"main": {"ref": "reg/x:abc"}}, "password": PASSWORD}, "human text")
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # the whole of stdout is one document
    assert document == {"images": {"main": {"ref": "reg/x:abc"}}, "password": "***"}
    assert "human text" not in captured.out
    assert "building" in captured.err and "::group::push" in captured.err
    assert PASSWORD not in captured.out + captured.err.replace(f"::add-mask::{PASSWORD}", "")


def test_json_mode_without_github_actions_also_prints_one_document(capsys):
    rep = Reporter(json_mode=True, secrets=[PASSWORD], environ={})
    rep.info("log line")
    rep.result({"ok": True}, "human")
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"ok": True}
    assert "::" not in captured.err


def test_add_mask_is_printed_in_github_actions_before_anything_else():
    rep, out, log = reporter(environ={"GITHUB_ACTIONS": "true"})
    masks = [line for line in (out.getvalue() + log.getvalue()).splitlines() if line.startswith("::add-mask::")]
    assert sorted(masks) == sorted([f"::add-mask::{PASSWORD}", f"::add-mask::{TOKEN}"])
    rep.add_secret("new-secret")
    assert "::add-mask::new-secret" in out.getvalue() + log.getvalue()
    rep.add_secret("new-secret")  # registered once only
    assert (out.getvalue() + log.getvalue()).count("::add-mask::new-secret") == 1


def test_add_mask_goes_to_stdout_outside_json_mode():
    _, out, _ = reporter(environ={"GITHUB_ACTIONS": "true"})
    assert out.getvalue().splitlines()[0].startswith("::add-mask::")


@pytest.mark.parametrize("environ", [{}, {"GITHUB_ACTIONS": "false"}, {"CI": "true"}])
def test_no_masks_or_annotations_outside_github_actions(environ):
    rep, out, log = reporter(environ=environ)
    rep.error("failed")
    with rep.group("stage"):
        pass
    assert "::" not in out.getvalue() + log.getvalue()
    assert "error: failed" in log.getvalue()


def test_github_actions_groups_and_error_annotations():
    rep, _, log = reporter(environ={"GITHUB_ACTIONS": "true"})
    with pytest.raises(RuntimeError):
        with rep.group(f"deploy {TOKEN}"):
            raise RuntimeError("boom")
    rep.error(f"bad token {TOKEN}")
    lines = log.getvalue().splitlines()
    assert lines == ["::group::deploy ***", "::endgroup::", "::error::bad token ***"]


def test_github_outputs_are_redacted(tmp_path):
    output = tmp_path / "github_output"
    output.write_text("earlier=1\n")
    rep, _, _ = reporter(environ={"GITHUB_OUTPUT": str(output)})
    rep.github_outputs({"image": "reg/x:abc", "login": f"user:{PASSWORD}", "diff": f"line1\n{TOKEN}\nline3", "n": 3})
    text = output.read_text()
    assert PASSWORD not in text and TOKEN not in text
    assert text.startswith("earlier=1\n")  # appended, never truncated
    assert "image=reg/x:abc\n" in text
    assert "login=user:***\n" in text
    assert "n=3\n" in text
    assert "diff<<__INVOKE_PACHYDERM_EOF__\nline1\n***\nline3\n__INVOKE_PACHYDERM_EOF__\n" in text


def test_github_summary_is_redacted(tmp_path):
    summary = tmp_path / "summary.md"
    rep, _, _ = reporter(environ={"GITHUB_STEP_SUMMARY": str(summary)})
    rep.github_summary(f"## Deployed\n\ntoken `{TOKEN}`\n\n\n")
    rep.github_summary("second")
    text = summary.read_text()
    assert TOKEN not in text
    assert text == "## Deployed\n\ntoken `***`\n\nsecond\n\n"


def test_no_github_files_without_their_variables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rep, out, log = reporter(environ={"GITHUB_ACTIONS": "true"})
    rep.github_outputs({"a": "b"})
    rep.github_summary("summary")
    assert list(tmp_path.iterdir()) == []


JSON_KEY = '{\n  "type": "service_account",\n  "private_key": "-----BEGIN KEY-----\\nMIIEvQIBADANBg\\n-----END KEY-----\\n",\n  "n": 1\n}\n'


def test_a_multi_line_secret_is_masked_line_by_line_but_never_a_short_fragment():
    rep, out, log = reporter(environ={"GITHUB_ACTIONS": "true"}, secrets=(JSON_KEY,))
    masks = [line.removeprefix("::add-mask::") for line in out.getvalue().splitlines()]
    assert masks == ['"type": "service_account",', '"private_key": "-----BEGIN KEY-----\\nMIIEvQIBADANBg\\n-----END KEY-----\\n",']
    assert all(len(mask) >= 8 for mask in masks)  # no lone `{`, `}` or `"n": 1`
    rep.info("the key's second line: " + JSON_KEY.splitlines()[1])
    assert "service_account" not in log.getvalue()


def test_a_one_line_secret_is_masked_whole_whatever_its_length():
    _, out, _ = reporter(environ={"GITHUB_ACTIONS": "true"}, secrets=("s3cr", "with-newline-at-end\n"))
    assert out.getvalue().splitlines() == ["::add-mask::s3cr", "::add-mask::with-newline-at-end"]
