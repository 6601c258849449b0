#!/usr/bin/env python3
"""Tests of compare.py's arithmetic (run by ctest as compare_py_test).

compare.py turns benchmark output into the figures and target verdicts
of bench/RESULTS.md: a wrong pairing or summary there misreports every
run. These tests feed it small hand-made results, as the binaries write
them, and check the figures, the ratios and the verdicts it derives.
"""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def gbench_entry(run_name, real_time, unit="us", items=None, error=False,
                 run_type="iteration", **counters):
    entry = {"name": run_name, "run_name": run_name, "run_type": run_type,
             "real_time": real_time, "time_unit": unit, **counters}
    if items is not None:
        entry["items_per_second"] = items
    if error:
        entry["error_occurred"] = True
    return entry


class PerOpTest(unittest.TestCase):
    def test_items_per_second_decides_when_counted(self):
        self.assertAlmostEqual(
            compare.per_op_us({"items_per_second": 50000.0,
                               "real_time": 7.0, "time_unit": "ms"}), 20.0)

    def test_the_wall_time_in_its_unit_otherwise(self):
        for unit, us in (("ns", 0.25), ("us", 250.0), ("ms", 250000.0),
                         ("s", 250000000.0)):
            self.assertAlmostEqual(
                compare.per_op_us({"real_time": 250.0, "time_unit": unit}),
                us)


class SummaryTest(unittest.TestCase):
    def test_median_min_max_and_count(self):
        self.assertEqual(compare.summary([3.0, 1.0, 10.0, 2.0]),
                         {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4})

    def test_nothing_to_summarise(self):
        self.assertIsNone(compare.summary([]))


class RatioTest(unittest.TestCase):
    def figures(self, ours, theirs, group_ours="g", group_theirs="g"):
        fig = compare.Figures()
        fig.add("ours", ours, "us/op", "src", "ours", group=group_ours)
        fig.add("theirs", theirs, "us/op", "src", "theirs",
                group=group_theirs)
        return fig

    def test_one_interleaved_run_is_paired_repetition_by_repetition(self):
        # Pairs 10/20, 40/30, 90/10: 0.5, 4/3 and 9; the ratio of the
        # medians (30/20 = 1.5) would say otherwise.
        fig = self.figures([20.0, 30.0, 10.0], [10.0, 40.0, 90.0])
        fig.ratio("r", "ours", "theirs", target=1.0)
        r = fig.ratios[0]
        self.assertTrue(r["paired"])
        self.assertAlmostEqual(r["median"], 4 / 3)
        self.assertAlmostEqual(r["min"], 0.5)
        self.assertAlmostEqual(r["max"], 9.0)
        self.assertTrue(r["met"])

    def test_separate_runs_compare_medians_with_the_extremes(self):
        fig = self.figures([20.0, 30.0, 10.0], [10.0, 40.0, 90.0],
                           group_theirs="other")
        fig.ratio("r", "ours", "theirs", target=2.0)
        r = fig.ratios[0]
        self.assertFalse(r["paired"])
        self.assertAlmostEqual(r["median"], 40.0 / 20.0)
        self.assertAlmostEqual(r["min"], 10.0 / 30.0)  # Their min / our max.
        self.assertAlmostEqual(r["max"], 90.0 / 10.0)  # Their max / our min.
        self.assertTrue(r["met"])  # 2.0 >= 2.0.

    def test_unequal_repetitions_are_not_paired(self):
        fig = self.figures([20.0, 30.0], [10.0, 40.0, 90.0])
        fig.ratio("r", "ours", "theirs")
        self.assertFalse(fig.ratios[0]["paired"])
        self.assertIsNone(fig.ratios[0]["met"])  # No target, no verdict.

    def test_a_target_missed(self):
        fig = self.figures([10.0], [4.0])
        fig.ratio("r", "ours", "theirs", target=0.5)
        self.assertAlmostEqual(fig.ratios[0]["median"], 0.4)
        self.assertFalse(fig.ratios[0]["met"])

    def test_a_range_target_needs_both_bounds(self):
        # Flat growth: 0.5 <= ratio <= 1.5.
        for theirs, met in ((10.0, True), (16.0, False), (4.0, False)):
            fig = self.figures([10.0], [theirs])
            fig.ratio("r", "ours", "theirs", target=0.5, at_most=1.5)
            self.assertEqual(fig.ratios[0]["met"], met, theirs)

    def test_a_missing_series_is_named_not_judged(self):
        fig = self.figures([10.0], [4.0])
        fig.ratio("r", "ours", "absent", target=0.5)
        self.assertEqual(fig.ratios[0]["missing"], True)
        self.assertNotIn("met", fig.ratios[0])

    def test_a_zero_cost_of_ours_gives_no_ratio(self):
        fig = self.figures([0.0, 1.0], [4.0, 5.0], group_theirs="other")
        fig.ratio("r", "ours", "theirs", target=0.5)
        self.assertIsNone(fig.ratios[0]["median"])
        self.assertIsNone(fig.ratios[0]["met"])

    def test_an_absolute_limit(self):
        fig = compare.Figures()
        fig.add("shred", [800.0, 900.0, 1200.0], "us/shred", "src", "shred")
        fig.limit("under 1 ms", "shred", 1000.0)
        fig.limit("under 0.5 ms", "shred", 500.0)
        self.assertTrue(fig.ratios[0]["met"])
        self.assertFalse(fig.ratios[1]["met"])


class EachTest(unittest.TestCase):
    def test_one_value_per_counter_in_order_scaled(self):
        runs = {"BM_X": [{"shred_ms_0": 1.5, "shred_ms_1": 2.0,
                          "shred_ms_3": 9.0},  # No _2: _3 is not read.
                         {"shred_ms_0": 0.5}]}
        fig = compare.Figures()
        fig.each("s", runs, "BM_X", "shred_ms_", 1000, "us/shred", "shred")
        self.assertEqual(fig.series["s"]["values"], [1500.0, 2000.0, 500.0])
        self.assertEqual(fig.series["s"]["median"], 1500.0)


class ReplayTest(unittest.TestCase):
    """Runner in --replay mode reads OUT/raw/ as the binaries wrote it."""

    def test_gbench_keeps_iterations_of_each_run_without_errors(self):
        with tempfile.TemporaryDirectory() as out:
            runner = compare.Runner("no-build", out, quick=False, reps=3,
                                    only=[], replay=True)
            data = {"benchmarks": [
                gbench_entry("BM_A", 10.0),
                gbench_entry("BM_B", 30.0, items=25000.0),
                gbench_entry("BM_A", 12.0),
                gbench_entry("BM_A", 99.0, error=True),
                gbench_entry("BM_A", 11.0, run_type="aggregate"),
                gbench_entry("BM_B", 40.0, items=20000.0),
            ]}
            with open(os.path.join(out, "raw", "bin.json"), "w") as f:
                json.dump(data, f)
            runs = runner.gbench("bin", "bin_bench", ".")
            self.assertEqual(sorted(runs), ["BM_A", "BM_B"])
            self.assertEqual([b["real_time"] for b in runs["BM_A"]],
                             [10.0, 12.0])
            self.assertEqual(runs.group, "bin")  # Interleaved: pairs.
            fig = compare.Figures()
            fig.gb("a", runs, "BM_A", "a")
            fig.gb("b", runs, "BM_B", "b")
            self.assertEqual(fig.series["b"]["values"], [40.0, 50.0])
            fig.ratio("b/a", "a", "b")
            self.assertTrue(fig.ratios[0]["paired"])
            self.assertAlmostEqual(fig.ratios[0]["median"],
                                   (40 / 10 + 50 / 12) / 2)

    def test_a_run_kept_in_order_is_not_paired(self):
        with tempfile.TemporaryDirectory() as out:
            runner = compare.Runner("no-build", out, quick=False, reps=3,
                                    only=[], replay=True)
            with open(os.path.join(out, "raw", "grow.json"), "w") as f:
                json.dump({"benchmarks": [gbench_entry("BM_G", 1.0)]}, f)
            runs = runner.gbench("grow", "grow_bench", ".", interleave=False)
            self.assertIsNone(runs.group)

    def test_a_run_that_left_no_output_gives_no_figures(self):
        with tempfile.TemporaryDirectory() as out:
            runner = compare.Runner("no-build", out, quick=False, reps=3,
                                    only=[], replay=True)
            self.assertEqual(runner.gbench("absent", "x_bench", "."), {})
            self.assertIsNone(runner.plain("absent", "x_bench", []))


if __name__ == "__main__":
    unittest.main()
