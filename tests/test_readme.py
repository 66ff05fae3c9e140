import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_quick_start_has_exactly_two_one_line_commands():
    commands = blocks("bash")
    assert len(commands) == 2
    assert all(len(command.strip().splitlines()) == 1 for command in commands)
    assert "cvalue demo" in commands[0]
    assert "pytest" in commands[1]


def test_the_python_example_runs_and_prints_the_cdnow_figures(capsys):
    example = blocks("python")[0]
    assert len(example.strip().splitlines()) <= 10
    exec(compile(example, str(README), "exec"), {})
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["2357", "2457"]
