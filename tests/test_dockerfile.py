"""The generated Dockerfile: the user's plus one LABEL line in the stage that is built."""
from __future__ import annotations

from invoke_pachyderm.backends.dockerfile import quote, with_labels

LABELS = {"org.opencontainers.image.revision": "abc", "org.opencontainers.image.source": "https://x/y"}
MULTI = """FROM busybox AS build
RUN echo build
FROM busybox as Test
RUN echo \\
FROM not-a-stage
FROM busybox AS prod
COPY --from=build /x /x
"""


def label_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("LABEL ")]


def test_one_label_line_at_the_end_without_a_target():
    text = with_labels("FROM busybox\nRUN true", LABELS)
    assert text.splitlines() == [
        "FROM busybox", "RUN true",
        'LABEL org.opencontainers.image.revision="abc" org.opencontainers.image.source="https://x/y"',
    ]


def test_the_label_goes_at_the_end_of_the_target_stage():
    lines = with_labels(MULTI, LABELS, target="test").splitlines()
    (label,) = label_lines("\n".join(lines))
    at = lines.index(label)
    # after the continued RUN (whose second line only looks like a FROM), before the next stage
    assert lines[at - 1] == "FROM not-a-stage" and lines[at + 1] == "FROM busybox AS prod"
    assert with_labels(MULTI, LABELS, target="prod").splitlines()[-1] == label
    assert with_labels(MULTI, LABELS, target="build").splitlines()[2] == label


def test_an_unknown_target_is_left_to_docker():
    assert with_labels(MULTI, LABELS, target="nope").splitlines()[-1].startswith("LABEL ")


def test_values_are_quoted_so_labels_read_back_unchanged():
    assert quote('a"b$HOME\\c') == '"a\\"b\\$HOME\\\\c"'
    text = with_labels("# escape=`\nFROM busybox\n", {"k": 'a"$b'})
    assert label_lines(text) == ['LABEL k="a`"`$b"']
