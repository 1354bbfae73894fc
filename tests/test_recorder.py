from __future__ import annotations

import threading

import numpy as np
import pytest

import pyinfer
from pyinfer.errors import InvalidArgumentError

PERCENTILES = (0.0, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0)


def assert_matches_numpy(summary: pyinfer.Summary, values: np.ndarray, ddof: int = 0) -> None:
    assert summary.count == values.size
    assert summary.exact
    assert summary.relative_error == 0.0
    assert summary.min == values.min()
    assert summary.max == values.max()
    assert summary.mean == pytest.approx(values.mean(), rel=1e-12)
    assert summary.std == pytest.approx(values.std(ddof=ddof), rel=1e-9)
    expected = np.percentile(values, list(summary.percentiles), method="linear")
    assert list(summary.percentiles.values()) == pytest.approx(list(expected), rel=1e-15)


def test_record_and_summary_match_numpy(rng: np.random.Generator) -> None:
    values = rng.lognormal(mean=15, sigma=0.4, size=5000)
    recorder = pyinfer.LatencyRecorder()
    for v in values[:100]:
        recorder.record(float(v))
    recorder.record_many(values[100:])
    assert recorder.count == len(recorder) == 5000
    np.testing.assert_array_equal(recorder.samples(), values)
    assert_matches_numpy(recorder.summary(PERCENTILES), values)
    assert_matches_numpy(recorder.summary(PERCENTILES, ddof=1), values, ddof=1)


def test_default_percentiles_and_lookup(rng: np.random.Generator) -> None:
    recorder = pyinfer.LatencyRecorder()
    recorder.record_many(rng.random(1000))
    summary = recorder.summary()
    assert tuple(summary.percentiles) == pyinfer.DEFAULT_PERCENTILES
    assert summary.percentile(99.9) == summary.percentiles[99.9]
    with pytest.raises(InvalidArgumentError, match="percentile 97 was not requested"):
        summary.percentile(97)
    as_dict = summary.to_dict()
    assert as_dict["count"] == 1000
    assert as_dict["percentiles"] == summary.percentiles
    assert summary.std_percent == pytest.approx(100 * summary.std / summary.mean)
    assert "p99.9=" in repr(summary)


def test_samples_is_a_zero_copy_read_only_view() -> None:
    recorder = pyinfer.LatencyRecorder()
    recorder.record_many(np.arange(10, dtype=np.float64))
    first, second = recorder.samples(), recorder.samples()
    assert np.shares_memory(first, second)  # both view the recorder's own buffer
    assert first.dtype == np.float64
    assert not first.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0


def test_a_view_stays_valid_when_the_recorder_grows_or_is_cleared() -> None:
    recorder = pyinfer.LatencyRecorder()
    recorder.record_many(np.arange(1000, dtype=np.float64))
    view = recorder.samples()
    recorder.record_many(np.full(100_000, 7.0))  # forces the buffer to grow
    recorder.clear()
    recorder.record_many(np.full(2000, 3.0))  # would overwrite a reused buffer
    np.testing.assert_array_equal(view, np.arange(1000, dtype=np.float64))
    assert recorder.count == 2000
    assert recorder.samples()[0] == 3.0


def test_an_empty_recorder_cannot_be_summarized() -> None:
    recorder = pyinfer.LatencyRecorder()
    assert recorder.count == 0
    assert recorder.samples().size == 0
    with pytest.raises(InvalidArgumentError, match="no samples recorded"):
        recorder.summary()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), -float("inf")])
def test_invalid_durations_are_rejected(bad: float) -> None:
    recorder = pyinfer.LatencyRecorder()
    with pytest.raises(InvalidArgumentError, match="must be finite and non-negative"):
        recorder.record(bad)
    with pytest.raises(InvalidArgumentError, match="at index 2 is invalid"):
        recorder.record_many([1.0, 2.0, bad, 4.0])
    assert recorder.count == 0  # nothing recorded from a rejected batch


@pytest.mark.parametrize("bad", [150.0, -1.0, float("nan")])
def test_unknown_percentiles_are_rejected(bad: float) -> None:
    recorder = pyinfer.LatencyRecorder()
    recorder.record(1.0)
    with pytest.raises(InvalidArgumentError, match=r"outside \[0, 100\]"):
        recorder.summary([50.0, bad])


def test_ddof_must_leave_degrees_of_freedom() -> None:
    recorder = pyinfer.LatencyRecorder()
    recorder.record(5.0)
    assert recorder.summary(ddof=0).std == 0.0
    with pytest.raises(InvalidArgumentError, match="ddof must be in"):
        recorder.summary(ddof=1)


def test_merge_equals_concatenation(rng: np.random.Generator) -> None:
    a_values, b_values = rng.random(3000), rng.random(5000) * 10
    a, b = pyinfer.LatencyRecorder(), pyinfer.LatencyRecorder()
    a.record_many(a_values)
    b.record_many(b_values)
    a.merge(b)
    both = np.concatenate([a_values, b_values])
    np.testing.assert_array_equal(a.samples(), both)
    assert_matches_numpy(a.summary(PERCENTILES), both)
    assert b.count == 5000  # the source is unchanged
    with pytest.raises(InvalidArgumentError, match="into itself"):
        a.merge(a)


def test_clear_keeps_the_mode() -> None:
    recorder = pyinfer.LatencyRecorder()
    recorder.record_many([1.0, 2.0])
    recorder.clear()
    assert recorder.count == 0
    recorder.record(4.0)
    assert recorder.summary().mean == 4.0
    assert repr(recorder) == "LatencyRecorder(count=1)"


@pytest.mark.parametrize("threads", [4, 8])
def test_concurrent_recording_loses_no_sample(threads: int) -> None:
    recorder = pyinfer.LatencyRecorder()
    per_thread = 20_000
    barrier = threading.Barrier(threads)

    def work(index: int) -> None:
        values = np.full(per_thread, float(index))
        barrier.wait()
        for v in values[: per_thread // 2]:
            recorder.record(float(v))
        for chunk in np.array_split(values[per_thread // 2 :], 50):
            recorder.record_many(chunk)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    samples = recorder.samples()
    assert samples.size == threads * per_thread
    counts = np.bincount(samples.astype(np.int64), minlength=threads)
    assert counts.tolist() == [per_thread] * threads


def test_record_many_converts_other_dtypes_and_shapes() -> None:
    recorder = pyinfer.LatencyRecorder()
    recorder.record_many(np.arange(12, dtype=np.int32).reshape(3, 4))
    recorder.record_many([12, 13])
    np.testing.assert_array_equal(recorder.samples(), np.arange(14, dtype=np.float64))
    assert recorder.memory_bytes >= 14 * 8
