"""Each task is declared once (commands.py); the Invoke tasks, Nox sessions, the CLI and the action's
task runner are built from that declaration, so they offer the same flags, parse them alike and
cannot drift apart."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from invoke_pachyderm.adapters import github_action as action
from invoke_pachyderm.adapters.argparsing import ParseStopped, add_flags, parser_for
from invoke_pachyderm.adapters.cli import build_parser
from invoke_pachyderm.commands import COMMANDS, Command
from invoke_pachyderm.core.errors import ConfigError
from invoke_pachyderm.core.flags import Flag, text
from invoke_pachyderm.nox import STAGES
from invoke_pachyderm.tasks import make_task, ns


def invoke_options(task) -> set[str]:
    found = set()
    for argument in task.get_arguments():
        for name in argument.names:
            found.add(("--" if len(name) > 1 else "-") + name)
        if argument.kind is bool and argument.default is True:  # the negatable switch
            found.add("--no-" + argument.names[0])
    return found


def argparse_options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action_ in parser._actions for option in action_.option_strings} - {"-h", "--help"}


def test_the_invoke_collection_is_the_declaration():
    assert set(ns.task_names) == set(COMMANDS)
    for name, command in COMMANDS.items():
        task = ns[name]
        assert task.flags == dict(command.flags), name
        assert task.__doc__ == command.help, name


def test_every_task_but_init_and_hooks_is_a_nox_session_with_the_invoke_flags():
    assert set(STAGES) == {"test", "build", "push", "render_spec", "deploy", "status", "rollback", "prune", "graph", "teardown", "smoke"}
    for stage, command in STAGES.items():
        assert argparse_options(parser_for(command, "nox")) == invoke_options(ns[command.name]), stage


def test_the_cli_init_has_the_init_task_flags_with_dir_positional():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["init"]
    assert argparse_options(sub) == invoke_options(ns["init"]) - {"--dir"}
    assert [a.dest for a in sub._actions if not a.option_strings] == ["dir"]


def test_a_new_flag_is_one_edit():
    command = dataclasses.replace(
        COMMANDS["render-spec"], flags={**COMMANDS["render-spec"].flags, "label": Flag("a label", "word", "none", text)}
    )
    task = make_task(command)
    assert "--label" in invoke_options(task)
    parser = parser_for(command, "nox -s render_spec --")
    assert vars(parser.parse_args(["--label", "x"]))["label"] == "x"
    with pytest.raises(ParseStopped) as stopped:
        parser.parse_args(["--label", "--check"])
    assert "expected one argument" in stopped.value.message
    cli = argparse.ArgumentParser()
    add_flags(cli, command)
    assert vars(cli.parse_args([]))["label"] is None  # not given: the settings apply


def test_switches_parse_to_real_booleans_or_none_everywhere():
    parser = parser_for(COMMANDS["deploy"], "nox -s deploy --")
    given = vars(parser.parse_args(["--dry-run", "--no-wait", "--timeout", "5"]))
    assert given["dry_run"] is True and given["wait"] is False and given["timeout"] == 5.0
    assert given["force"] is None and given["regenerate"] is None  # not given: None, not False
    assert vars(parser.parse_args(["-n", "--wait"]))["dry_run"] is True


def test_a_command_declares_what_its_adapters_need():
    for name, command in COMMANDS.items():
        assert isinstance(command, Command) and command.help.endswith(".") and "json" in command.flags, name
        assert set(command.positional) <= set(command.flags), name


@pytest.mark.parametrize("value, expected", [("", False), ("false", False), ("True", True), ("yes", True), ("0", False)])
def test_the_action_reads_dry_run_with_the_one_boolean_parser(value, expected):
    assert action.dry_run_input(value) is expected


def test_the_action_refuses_a_dry_run_that_is_not_a_boolean():
    with pytest.raises(ConfigError) as raised:
        action.dry_run_input("maybe")
    assert raised.value.exit_code == 2 and str(raised.value) == "dry-run must be true or false, not 'maybe'"


def test_the_action_adds_dry_run_to_each_task_that_declares_it():
    assert action.invocations("test\n  # a comment\nrender-spec --check # checks\n\ndeploy --reprocess") == [
        ["test"], ["render-spec", "--check"], ["deploy", "--reprocess"],
    ]
    assert action.with_dry_run(["deploy", "--reprocess"]) == ["deploy", "--dry-run", "--reprocess"]
    assert action.with_dry_run(["test", "deploy"]) == ["test", "deploy", "--dry-run"]
    assert action.with_dry_run(["render-spec", "--check"]) == ["render-spec", "--check"]
    assert action.with_dry_run(["deploy", "-n"]) == ["deploy", "-n"]
    assert action.with_dry_run(["deploy", "--dry-run"]) == ["deploy", "--dry-run"]
