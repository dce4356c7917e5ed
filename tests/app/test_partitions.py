"""Creation-time partitions: disjoint half-open windows that cover all time."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from app.extractors.partitions import (
    CREATED_MS,
    CreatedWindow,
    created_ms,
    owner,
    plan_from_created,
    plan_from_range,
    windows,
)


def test_windows_are_half_open_and_cover_everything():
    parts = windows([2_000, 1_000, 2_000])
    assert [(w.start_ms, w.end_ms) for w in parts] == [(None, 1_000), (1_000, 2_000), (2_000, None)]
    for moment in (-5, 0, 999, 1_000, 1_001, 1_999, 2_000, 2_001, 10**13):
        assert sum(w.contains(moment) for w in parts) == 1
    assert owner(parts, 1_000).index == 1  # a boundary belongs to the window it starts
    assert owner(parts, 999).index == 0
    assert owner(parts, 2_000).index == 2


def test_formulas_compare_whole_milliseconds():
    first, middle, last = windows([1_000, 2_000])
    assert first.formula() == f"{CREATED_MS}<1000"
    assert middle.formula() == f"AND({CREATED_MS}>=1000,{CREATED_MS}<2000)"
    assert last.formula() == f"{CREATED_MS}>=2000"
    assert CreatedWindow(0).formula() is None


def test_plan_from_created_balances_counts_and_never_loses_a_record():
    rng = random.Random(7)
    times = [1_700_000_000_000 + int(rng.expovariate(1e-7)) for _ in range(10_000)]
    times += times[:500]  # bulk creates share a millisecond
    plan = plan_from_created(times, 4)
    assert len(plan) == 4
    counts = [sum(w.contains(t) for t in times) for w in plan]
    assert sum(counts) == len(times)
    assert min(counts) > len(times) / 4 * 0.8
    assert plan[0].start_ms is None and plan[-1].end_ms is None


def test_small_tables_and_one_part_stay_one_listing():
    assert plan_from_created(range(999), 4) == [CreatedWindow(0)]
    assert plan_from_created(range(5_000), 1) == [CreatedWindow(0)]
    assert plan_from_created(range(2_500), 8, min_records=1_000) == windows([1_250])
    assert plan_from_created([5] * 5_000, 4) == [CreatedWindow(0)]  # one instant: no cut


def test_plan_from_range_splits_time_evenly():
    plan = plan_from_range(1_000, 5_000, 4)
    assert [w.start_ms for w in plan] == [None, 2_000, 3_000, 4_000]
    assert plan_from_range(1_000, 1_002, 4) == [CreatedWindow(0)]


def test_created_ms_reads_airtable_times():
    assert created_ms("2024-03-01T12:30:00.500Z") == 1_709_296_200_500
    assert created_ms(datetime(2024, 3, 1, 12, 30, 0, 500_000, tzinfo=UTC)) == 1_709_296_200_500
    assert created_ms(datetime(2024, 3, 1, 12, 30, 0, 500_000)) == 1_709_296_200_500
    with pytest.raises(ValueError):
        created_ms("yesterday")


def test_windows_survive_json():
    for window in windows([1, 2]):
        assert CreatedWindow.from_json(window.to_json()) == window
