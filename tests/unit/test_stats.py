from llmasos.kernel.stats import Histogram


def test_histogram_counts_are_cumulative_with_an_infinite_bucket():
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    cumulative, total, count = histogram.snapshot()
    assert cumulative == [2, 3, 4]
    assert count == 4
    assert total == 3.65
