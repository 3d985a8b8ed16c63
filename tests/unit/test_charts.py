"""The console's SVG charts: well-formed, accessible (title, description of every point), escaped, no script."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from kakin.web.charts import bar_chart, line_chart

NS = {"svg": "http://www.w3.org/2000/svg"}
MONTHS = [("2026-04", 0), ("2026-05", 20000), ("2026-06", 36200)]


@pytest.mark.parametrize("chart", [bar_chart, line_chart])
def test_a_chart_is_an_svg_image_named_by_its_title_and_described_point_by_point(chart) -> None:  # type: ignore[no-untyped-def]
    svg = ET.fromstring(chart(MONTHS, title="月別請求額", unit="円"))
    assert svg.get("role") == "img"
    title, desc = svg.find("svg:title", NS), svg.find("svg:desc", NS)
    assert title is not None and desc is not None
    assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert title.text == "月別請求額"
    assert desc.text == "2026-04: 0 円; 2026-05: 20,000 円; 2026-06: 36,200 円"
    labels = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert {"2026-04", "2026-05", "2026-06", "36,200 円", "0 円"} <= set(labels)
    tooltips = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")][1:]
    assert tooltips == ["2026-04: 0 円", "2026-05: 20,000 円", "2026-06: 36,200 円"]


def test_bars_are_as_tall_as_their_values() -> None:
    svg = ET.fromstring(bar_chart([("a", 100), ("b", 50), ("c", 0)], title="t"))
    heights = [int(r.get("height", "")) for r in svg.iter("{http://www.w3.org/2000/svg}rect")]
    assert heights[0] == 2 * heights[1] and heights[2] == 0  # the plot is 184 units high: 184 and 92


def test_a_negative_month_draws_below_the_zero_line() -> None:
    svg = ET.fromstring(bar_chart([("a", 100), ("b", -100)], title="t"))
    up, down = svg.iter("{http://www.w3.org/2000/svg}rect")
    assert int(up.get("y", "")) + int(up.get("height", "")) == int(down.get("y", ""))  # both meet at zero


@pytest.mark.parametrize("chart", [bar_chart, line_chart])
def test_text_in_a_chart_is_escaped_and_it_has_no_script(chart) -> None:  # type: ignore[no-untyped-def]
    out = chart([("<script>alert(1)</script>", 5)], title='A & B "<b>"', unit="<円>")
    assert "<script" not in out and "<b>" not in out
    svg = ET.fromstring(out)  # still well-formed XML
    assert svg.find("svg:title", NS).text == 'A & B "<b>"'  # type: ignore[union-attr]
    assert "on" not in {name[:2] for el in svg.iter() for name in el.attrib}  # no event handlers


@pytest.mark.parametrize("chart", [bar_chart, line_chart])
def test_an_empty_or_all_zero_chart_still_draws(chart) -> None:  # type: ignore[no-untyped-def]
    assert ET.fromstring(chart([], title="t")).find("svg:desc", NS).text == "no data"  # type: ignore[union-attr]
    ET.fromstring(chart([("a", 0), ("b", 0)], title="t"))


def test_a_point_that_is_not_a_whole_number_is_refused() -> None:
    with pytest.raises(ValueError):
        bar_chart([("a", 1.5)], title="t")  # type: ignore[list-item]


def test_twelve_months_of_labels_are_thinned_so_that_none_overlap() -> None:
    months = [(f"2025-{m:02d}", m * 1000) for m in range(1, 13)]
    svg = ET.fromstring(bar_chart(months, title="t"))
    labels = [t for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "point-label"]
    xs = [int(t.get("x", "")) for t in labels]
    assert labels[0].text == "2025-01" and 1 < len(labels) < 12
    assert min(b - a for a, b in zip(xs, xs[1:], strict=False)) >= 7 * 7  # 7 characters at about 7 units each
    assert len(svg.findall("svg:desc", NS)) == 1 and "2025-12: 12,000" in svg.find("svg:desc", NS).text  # type: ignore[operator,union-attr]


def test_a_value_label_too_close_to_zero_is_left_out() -> None:
    svg = ET.fromstring(bar_chart([("a", 100000), ("b", -10)], title="t", unit="円"))
    values = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "value-label"]
    assert values == ["0 円", "100,000 円"]  # −10 would print over 0
