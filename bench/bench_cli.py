"""Start-up cost: `churnctl --help` and `churnctl profile list` (target: <= 0.25 s median)."""

from __future__ import annotations

import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))

from _common import CHURNCTL, time_command, write_results

TARGET_S = 0.25


def main() -> None:
    figures = {}
    for label, args in (("help", ["--help"]), ("profile_list", ["profile", "list"])):
        figures[label] = time_command([*CHURNCTL, *args], repeat=11)
        figures[label]["target_s"] = TARGET_S
        figures[label]["meets_target"] = figures[label]["median_s"] <= TARGET_S
    write_results("cli", figures)


if __name__ == "__main__":
    main()
