"""The charts' geometry: honest axes from zero, one bar or point per value."""

from __future__ import annotations

import pytest

from portal.dashboard import charts


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (0, (1, 1)),
        (3, (3, 1)),
        (10, (10, 5)),
        (100, (100, 50)),
        (123, (150, 50)),
        (9_999, (10_000, 5_000)),
    ],
)
def test_the_value_axis_ends_at_a_nice_number_above_the_maximum(
    maximum: int, expected: tuple[int, int]
) -> None:
    top, step = charts.nice_scale(maximum)
    assert (top, step) == expected
    assert top >= maximum
    assert top % step == 0


def test_bars_are_proportional_to_their_values_and_stand_on_the_axis() -> None:
    chart = charts.bar_chart(["a", "b", "c"], [0, 50, 100])
    frame = chart.frame
    assert frame.top_value == 100
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0
    assert heights[2] == pytest.approx(frame.plot_height)
    assert heights[1] == pytest.approx(frame.plot_height / 2)
    for bar in chart.bars:
        assert bar.y + bar.height == pytest.approx(frame.bottom)
        assert frame.left <= bar.x < bar.x + bar.width <= frame.right
    assert [bar.label for bar in chart.bars] == ["a", "b", "c"]
    assert [tick.label for tick in frame.value_ticks] == ["0", "50", "100"]


def test_a_line_has_one_point_per_value_at_its_height() -> None:
    chart = charts.line_chart(
        ["d1", "d2"], [("flagged", "Flagged", [4, 0]), ("reviewed", "Reviewed", [2, 4])]
    )
    flagged, reviewed = chart.lines
    assert [point.value for point in flagged.points] == [4, 0]
    assert flagged.points[0].y == pytest.approx(chart.frame.top)
    assert flagged.points[1].y == pytest.approx(chart.frame.bottom)
    assert reviewed.points[0].y == pytest.approx((chart.frame.top + chart.frame.bottom) / 2)
    assert flagged.path.count(",") == 2


def test_stacked_segments_split_the_row_in_proportion() -> None:
    chart = charts.stacked_bars(
        [
            ("b1", [("not_grooming", "Not grooming", 1), ("grooming", "Grooming", 3)]),
            ("b2", [("not_grooming", "Not grooming", 0), ("grooming", "Grooming", 0)]),
        ]
    )
    first, empty = chart.rows
    assert [segment.value for segment in first.segments] == [1, 3]
    assert first.segments[1].width == pytest.approx(3 * first.segments[0].width)
    assert first.segments[1].x == pytest.approx(first.segments[0].x + first.segments[0].width)
    assert empty.total == 0
    assert empty.segments == ()
