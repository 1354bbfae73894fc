from __future__ import annotations

import threading

import numpy as np
import pytest

import pyinfer
from pyinfer.errors import InvalidArgumentError

ONE_HOUR_NS = 3_600_000_000_000
RANKS = (0.0, 0.1, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0)


def histogram_of(
    values: np.ndarray, digits: int = 3, highest: int = ONE_HOUR_NS
) -> pyinfer.LatencyRecorder:
    recorder = pyinfer.LatencyRecorder(
        histogram=True, significant_digits=digits, highest_trackable_ns=highest
    )
    recorder.record_many(values)
    return recorder


def assert_within_bound(summary: pyinfer.Summary, values: np.ndarray) -> None:
    exact = np.percentile(values, list(summary.percentiles), method="linear")
    bound = summary.relative_error
    for rank, estimate, truth in zip(
        summary.percentiles, summary.percentiles.values(), exact, strict=True
    ):
        # Values are recorded at 1 ns resolution: the bound is relative, or 1 ns.
        assert abs(estimate - truth) <= max(bound * truth, 1.0), (rank, estimate, truth)


@pytest.mark.parametrize("digits", [1, 2, 3, 4, 5])
def test_error_bound_holds_over_the_whole_range(digits: int, rng: np.random.Generator) -> None:
    # Log-uniform from 1 ns to one hour: every octave of the range is exercised.
    values = np.exp(rng.uniform(0.0, np.log(ONE_HOUR_NS), size=200_000))
    recorder = histogram_of(values, digits)
    assert recorder.relative_error <= 10.0**-digits
    summary = recorder.summary(RANKS)
    assert not summary.exact
    assert summary.relative_error == recorder.relative_error
    assert_within_bound(summary, values)


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e6, 1e9, 1e12])
def test_error_bound_holds_in_every_decade(scale: float, rng: np.random.Generator) -> None:
    values = rng.uniform(1.0, 10.0, size=50_000) * scale
    # Up to 10^13 ns (under three hours) with a raised highest trackable value.
    assert_within_bound(histogram_of(values, highest=10**14).summary(RANKS), values)


def test_integer_values_below_the_linear_limit_are_exact(rng: np.random.Generator) -> None:
    values = rng.integers(0, 1000, size=10_000).astype(np.float64)
    summary = histogram_of(values).summary(RANKS)
    expected = np.percentile(values, list(RANKS), method="linear")
    np.testing.assert_array_equal(list(summary.percentiles.values()), expected)


def test_moments_min_and_max_are_exact(rng: np.random.Generator) -> None:
    values = 1e6 + rng.standard_normal(100_000)  # std a millionth of the mean
    summary = histogram_of(values).summary()
    assert summary.count == values.size
    assert summary.min == values.min()
    assert summary.max == values.max()
    assert summary.mean == pytest.approx(values.mean(), rel=1e-12)
    assert summary.std == pytest.approx(values.std(), rel=1e-9)
    assert histogram_of(values).summary(ddof=1).std == pytest.approx(values.std(ddof=1), rel=1e-9)


def test_memory_is_bounded_and_fixed_at_construction(rng: np.random.Generator) -> None:
    recorder = pyinfer.LatencyRecorder(histogram=True)
    before = recorder.memory_bytes
    assert before < 256 * 1024  # 3 digits up to an hour: about 140 KiB
    for _ in range(10):
        recorder.record_many(rng.uniform(1, ONE_HOUR_NS, size=100_000))
    assert recorder.count == 1_000_000
    assert recorder.memory_bytes == before


def test_merge_is_exact(rng: np.random.Generator) -> None:
    a_values = rng.lognormal(14, 1, size=30_000)
    b_values = rng.lognormal(16, 0.5, size=20_000)
    merged = histogram_of(a_values)
    merged.merge(histogram_of(b_values))
    direct = histogram_of(np.concatenate([a_values, b_values]))
    np.testing.assert_array_equal(merged.histogram_buckets(), direct.histogram_buckets())
    m, d = merged.summary(RANKS), direct.summary(RANKS)
    assert m.percentiles == d.percentiles
    assert (m.count, m.min, m.max) == (d.count, d.min, d.max)
    assert m.mean == pytest.approx(d.mean, rel=1e-12)
    assert m.std == pytest.approx(d.std, rel=1e-9)


def test_exact_samples_merge_into_a_histogram_but_not_back(rng: np.random.Generator) -> None:
    values = rng.uniform(1, 1e6, size=1000)
    exact = pyinfer.LatencyRecorder()
    exact.record_many(values)
    hist = pyinfer.LatencyRecorder(histogram=True)
    hist.merge(exact)
    np.testing.assert_array_equal(
        hist.histogram_buckets(), histogram_of(values).histogram_buckets()
    )
    with pytest.raises(
        InvalidArgumentError, match="cannot merge a histogram recorder into an exact"
    ):
        exact.merge(hist)
    other = pyinfer.LatencyRecorder(histogram=True, significant_digits=2)
    with pytest.raises(InvalidArgumentError, match="different settings"):
        hist.merge(other)


def test_buckets_cover_every_value(rng: np.random.Generator) -> None:
    values = rng.uniform(0, 1e7, size=10_000)
    buckets = histogram_of(values).histogram_buckets()
    assert buckets.dtype == np.uint64
    assert buckets.shape[1] == 3
    assert int(buckets[:, 2].sum()) == values.size
    lows, widths = buckets[:, 0], buckets[:, 1]
    assert np.all(lows[1:] >= lows[:-1] + widths[:-1])  # ascending, non-overlapping
    rounded = np.rint(values)
    assert rounded.min() >= lows[0]
    assert rounded.max() < lows[-1] + widths[-1]


def test_settings_and_bad_values() -> None:
    recorder = pyinfer.LatencyRecorder(
        histogram=True, significant_digits=2, highest_trackable_ns=1_000_000
    )
    assert recorder.is_histogram
    assert recorder.significant_digits == 2
    assert recorder.highest_trackable_ns == 1_000_000
    assert "histogram=True" in repr(recorder)
    with pytest.raises(InvalidArgumentError, match="exceeds the histogram's highest trackable"):
        recorder.record(2_000_000)
    with pytest.raises(InvalidArgumentError, match="exceeds the histogram's highest trackable"):
        recorder.record_many([1.0, 5e6])
    assert recorder.count == 0
    with pytest.raises(InvalidArgumentError, match="keeps no individual samples"):
        recorder.samples()
    with pytest.raises(InvalidArgumentError, match="no samples recorded"):
        recorder.summary()
    with pytest.raises(InvalidArgumentError, match="must be finite and non-negative"):
        recorder.record(-3.0)
    with pytest.raises(InvalidArgumentError, match="no histogram buckets"):
        pyinfer.LatencyRecorder().histogram_buckets()


def test_values_above_the_highest_trackable_are_rejected_exactly() -> None:
    # 2**64 - 1 has no double (it rounds up to 2**64): 2**64 must be rejected, not converted to an
    # integer (undefined behaviour, found by the sanitizers: it was recorded as 0).
    top = pyinfer.LatencyRecorder(histogram=True, highest_trackable_ns=2**64 - 1)
    with pytest.raises(InvalidArgumentError, match="exceeds the histogram's highest trackable"):
        top.record(2.0**64)
    with pytest.raises(InvalidArgumentError, match="at index 1 exceeds the histogram's highest"):
        top.record_many([1.0, 2.0**64])
    assert top.count == 0
    top.record(float(2**64 - 2048))  # the largest double below 2**64
    assert top.summary().max == float(2**64 - 2048)
    # 2**60 + 200 rounds up to 2**60 + 256 as a double: that value is above the highest trackable
    # and a batch holding it is rejected whole (it was half recorded).
    recorder = pyinfer.LatencyRecorder(histogram=True, highest_trackable_ns=2**60 + 200)
    with pytest.raises(InvalidArgumentError, match="at index 1 exceeds the histogram's highest"):
        recorder.record_many([1.0, float(2**60 + 256)])
    assert recorder.count == 0
    with pytest.raises(InvalidArgumentError, match="exceeds the histogram's highest trackable"):
        recorder.record(float(2**60 + 256))
    exact = pyinfer.LatencyRecorder()
    exact.record_many([5.0, float(2**60 + 256)])
    with pytest.raises(InvalidArgumentError, match="at index 1 exceeds the histogram's highest"):
        recorder.merge(exact)
    assert recorder.count == 0
    recorder.record(float(2**60))
    assert recorder.count == 1


@pytest.mark.parametrize("digits", [0, 6, -1])
def test_significant_digits_out_of_range(digits: int) -> None:
    with pytest.raises(InvalidArgumentError, match="significant_digits must be between 1 and 5"):
        pyinfer.LatencyRecorder(histogram=True, significant_digits=digits)


def test_highest_trackable_too_small() -> None:
    with pytest.raises(InvalidArgumentError, match="highest trackable value must be at least 2"):
        pyinfer.LatencyRecorder(histogram=True, highest_trackable_ns=1)


def test_clear_and_single_value() -> None:
    recorder = histogram_of(np.array([123_456.0]))
    summary = recorder.summary()
    assert summary.min == summary.max == summary.mean == 123_456.0
    assert all(v == 123_456.0 for v in summary.percentiles.values())  # clamped to [min, max]
    recorder.clear()
    assert recorder.count == 0
    recorder.record(7.0)
    assert recorder.summary().percentile(50) == 7.0


def test_concurrent_recording_loses_no_sample() -> None:
    recorder = pyinfer.LatencyRecorder(histogram=True)
    threads, per_thread = 6, 30_000
    barrier = threading.Barrier(threads)

    def work(index: int) -> None:
        barrier.wait()
        value = float(1000 * (index + 1))
        for _ in range(per_thread // 3):
            recorder.record(value)
        recorder.record_many(np.full(per_thread - per_thread // 3, value))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    buckets = recorder.histogram_buckets()
    assert recorder.count == threads * per_thread
    assert buckets[:, 2].tolist() == [per_thread] * threads
