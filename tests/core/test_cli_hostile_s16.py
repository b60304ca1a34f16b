"""Review s16 of the CLI: `output.visible`, the escape every table cell, rule preview and
decision line goes through, kept any text whose characters are all `isprintable()` as it was;
letters drawn as nothing (U+3164 HANGUL FILLER, U+115F, U+034F, variation selectors) are
printable, so `pilothouse grants` and `approve --scope profile` showed `curl\u3164x.invalid` as
`curl x.invalid` while console.text.shown (the card, `approvals`) names them."""

from __future__ import annotations

import pytest

from console.cli.approvals import preview_text
from console.cli.output import table

DRAWN_AS_NOTHING = ["\u3164", "\u115f", "\u034f", "\ufe0f", "\U000e0100"]


@pytest.mark.parametrize("ch", DRAWN_AS_NOTHING)
def test_grants_and_rule_previews_name_letters_drawn_as_nothing(
        ch: str, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = f"curl{ch}x.invalid"
    table([["g7kq2m", "allow", "exec", pattern, "run"]], ["ID", "EFFECT", "KIND", "PATTERN", "SCOPE"])
    out = capsys.readouterr().out
    preview = preview_text({"file": "/home/dev/.config/pilothouse/config.toml",
                            "lines": [f'+ demo exec allow "{pattern}"'], "diff": ""})
    for shown in (out, preview):
        assert ch not in shown and f"U+{ord(ch):04X}" in shown, ascii(shown)
