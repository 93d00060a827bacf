import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def test_counts_lines_and_words(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    (inputs / "a.txt").write_text("one two\nthree\n")
    env = {**os.environ, "PFS_IN": str(inputs), "PFS_OUT": str(outputs)}
    subprocess.run(["sh", str(HERE / "edges.sh")], env=env, check=True)
    assert (outputs / "a.txt").read_text().split() == ["2", "3"]
