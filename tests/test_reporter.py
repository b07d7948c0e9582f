"""The one reporter a command says what it does through: stderr only, live on a terminal, silent when quiet."""

from rich.table import Table

from nnrun.reporter import Reporter


def test_a_reporter_says_everything_on_stderr_as_it_is(capsys, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)  # a CI that forces colour would add escape codes
    report = Reporter()
    report.say("a [bold]plain[/bold] line, its brackets kept")
    report.note("a note")
    report.warn("warning: careful")
    said = capsys.readouterr()
    assert said.out == "", "stdout is for what scripts read"
    assert said.err == "a [bold]plain[/bold] line, its brackets kept\na note\nwarning: careful\n"


def test_a_quiet_reporter_says_nothing(capsys):
    report = Reporter(quiet=True)
    report.say("a line")
    report.warn("warning: careful")
    with report.status("exporting onnx"):
        report.print(Table("metric"))
    assert capsys.readouterr() == ("", "")


def test_the_commands_reporter_is_live_on_a_terminal_unless_quiet(monkeypatch):
    from nnrun.cli import streams

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    assert not streams.reporter().live, "stderr is not a terminal here (a CI log)"
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich (14 and later) takes stderr for a terminal
    assert streams.reporter().live and not streams.reporter(quiet=True).live
    assert not streams.reporter(quiet=True).quiet, "--quiet only drops the live display; the lines are still said"
