"""Printed rates, sizes and durations read as people write them."""

import pytest

from stardag.humanize import number, rate, seconds, size
from stardag.operator import _info


@pytest.mark.parametrize(
    "x, text",
    [
        (0, "0"),
        (12, "12"),
        (0.12345, "0.123"),
        (999.4, "999"),
        (999.6, "1k"),
        (15800.0, "15.8k"),
        (158_000, "158k"),
        (999_999, "1M"),
        (2.5e9, "2.5G"),
        (-1234.0, "-1.23k"),
    ],
)
def test_numbers_have_three_digits_and_a_unit_never_an_exponent_above_one(x, text):
    assert number(x) == text


def test_rates_sizes_and_durations():
    assert rate(15800.0, "tokens") == "15.8k tokens/s"
    assert size(512) == "512 B" and size(1536) == "1.5 KB" and size(3.2 * 1024**3) == "3.2 GB"
    assert seconds(0.43) == "0.4s" and seconds(125) == "2m05s" and seconds(3720) == "1h02m"


def test_operator_progress_prints_rates_as_human_numbers():
    assert _info("tokens_per_s", 15812.3) == "15.8k tokens/s"
    assert _info("loss", 0.123456) == "loss 0.123"
    assert _info("steps", 40) == "steps 40"
