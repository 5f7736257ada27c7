"""Issue #12 item 9: the command line refuses bad money inputs and names the typed dates."""

from __future__ import annotations

import pytest

from tradeship.cli import main

BASE = ["backtest", "--strategy", "buy_and_hold", "--source", "demo", "--quiet"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cash", "-5"], "--cash must be greater than 0, got '-5'"),
        (["--cash", "0"], "--cash must be greater than 0"),
        (["--commission", "-0.05"], "--commission must be 0 or more, got '-0.05'"),
        (["--slippage", "-0.5"], "--slippage must be 0 or more, got '-0.5'"),
        (["--slippage", "nan"], "--slippage must be 0 or more, got 'nan'"),
        (["--commission", "inf"], "--commission must be 0 or more"),
    ],
)
def test_negative_money_inputs_exit_2_with_one_sentence(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*BASE, "--out", str(tmp_path), *extra])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing ran


def test_start_after_end_names_the_dates_typed(tmp_path, capsys):
    args = [*BASE, "--out", str(tmp_path), "--start", "2016-12-30", "--end", "2015-01-02"]
    assert main(args) == 2
    assert "--start 2016-12-30 is after --end 2015-01-02" in capsys.readouterr().err


def test_slippage_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        main(["backtest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "at the open or the close, in full even past the bar's high/low" in text
