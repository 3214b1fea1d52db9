"""Scaling-law sweep (uipbench.transfer.scaling): nested group subsets, the budget rule, the power-law fit and the
data-efficiency ratio on synthetic data (exact), and a tiny real sweep (a tiny CHGNet on real GPAW r2SCAN frames,
1 epoch) stored, resumed, and resumed after SIGKILL mid-sweep."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uipbench.store import ResultStore
from uipbench.transfer import scaling as S

sys.path.insert(0, str(Path(__file__).parent))
from test_transfer_training import PAIRS, tiny_chgnet

# ---------------------------------------------------------------------------------------------------------------
# sizes and subsets


def test_log_sizes():
    s = S.log_sizes(270, 8, 6)
    assert s[0] == 8 and s[-1] == 270 and s == sorted(set(s)) and len(s) == 6
    ratios = np.diff(np.log(s))
    assert np.allclose(ratios, ratios.mean(), atol=0.05)
    assert S.log_sizes(5, 8, 6) == [5] and S.log_sizes(100, 8, 1) == [100]


def _synthetic_pool(n_groups=30, seed=0):
    rng = np.random.default_rng(seed)
    ids, groups = [], []
    for g in range(n_groups):
        for k in range(int(rng.integers(1, 6))):
            ids.append(f"g{g:02d}-{k}")
            groups.append(f"g{g:02d}")
    return ids, groups


def test_nested_subsets_are_nested_and_keep_groups_whole():
    ids, groups = _synthetic_pool()
    group_of = dict(zip(ids, groups, strict=True))
    sizes = S.log_sizes(len(ids), 4, 5)
    for seed in range(5):
        sub = S.nested_subsets(ids, groups, sizes, seed=seed)
        assert list(sub) == sizes and sub[sizes[-1]] == ids  # the largest is the whole pool, in its order
        for a, b in itertools.pairwise(sizes):
            assert set(sub[a]) <= set(sub[b]), (seed, a, b)
        for n, chosen in sub.items():
            assert len(chosen) >= n
            taken = {group_of[i] for i in chosen}
            assert set(chosen) == {i for i in ids if group_of[i] in taken}, "a group was split"
            assert [i for i in ids if i in set(chosen)] == chosen
        assert sub == S.nested_subsets(ids, groups, sizes, seed=seed)
    assert S.nested_subsets(ids, groups, sizes, 0) != S.nested_subsets(ids, groups, sizes, 1)
    # no more groups than needed: a subset overshoots N by less than one (the largest) group
    biggest = max(pd.Series(groups).value_counts())
    for seed in range(5):
        for n, chosen in S.nested_subsets(ids, groups, [5, 10, 20, 40], seed=seed).items():
            assert n <= len(chosen) < n + biggest
    fr = S.nested_subsets(ids, groups, [3, 9, 27], seed=2, unit="frame")
    assert [len(v) for v in fr.values()] == [3, 9, 27] and set(fr[3]) <= set(fr[9]) <= set(fr[27])
    with pytest.raises(ValueError):
        S.nested_subsets(ids, groups, [4], unit="atom")


# ---------------------------------------------------------------------------------------------------------------
# the budget rule


def test_budget_rule_gives_small_runs_enough_steps():
    b = S.Budget(steps_target=500, batch_size=16, min_epochs=5, max_epochs=100)
    ns = [1, 8, 16, 40, 100, 300, 1000, 3000, 20000]
    epochs = [b.epochs(n) for n in ns]
    steps = [b.steps(n) for n in ns]
    assert epochs[0] == epochs[1] == 100  # small N: the epoch cap binds, not a handful of steps
    assert all(5 <= e <= 100 for e in epochs) and epochs == sorted(epochs, reverse=True)
    assert steps[:3] == sorted(steps[:3]) and steps[-3:] == sorted(steps[-3:]), "steps grow where a cap binds"
    for n, s in zip(ns, steps, strict=True):
        per_epoch = math.ceil(n / 16)
        assert s == b.epochs(n) * per_epoch
        assert s >= min(500, 100 * per_epoch), "never fewer than steps_target unless max_epochs binds"
        assert s < max(500, 5 * per_epoch) + per_epoch, "never more than one epoch beyond the larger floor"
    assert steps[-1] == 5 * math.ceil(20000 / 16)  # large N: min_epochs passes over the data
    assert S.epochs_for(160, 100, 16, 1, 1000) == 10 and "steps_target" in b.as_dict()["rule"]
    with pytest.raises(ValueError):
        S.epochs_for(10, 100, 16, 5, 2)


# ---------------------------------------------------------------------------------------------------------------
# the fit and the ratio (synthetic, exact)


def test_power_law_fit_recovers_slope_and_r2():
    n = np.geomspace(8, 5000, 9)
    exact = S.power_law_fit(n, 120.0 * n**-0.37)
    assert exact["slope"] == pytest.approx(-0.37, abs=1e-12) and exact["r2"] == pytest.approx(1.0, abs=1e-12)
    assert 10 ** exact["intercept"] == pytest.approx(120.0, rel=1e-10)
    assert (exact["n_lo"], exact["n_hi"], exact["n_points"]) == (8.0, 5000.0, 9)
    rng = np.random.default_rng(0)
    noisy = S.power_law_fit(np.repeat(n, 3), 120.0 * np.repeat(n, 3) ** -0.37 * np.exp(rng.normal(0, 0.05, 27)))
    assert noisy["slope"] == pytest.approx(-0.37, abs=0.03) and 0.95 < noisy["r2"] < 1.0
    # the threshold: a flat small-N plateau below n_min does not enter the fit
    mae = np.where(n < 100, 200.0, 120.0 * n**-0.37)
    above = S.power_law_fit(n, mae, n_min=100)
    assert above["slope"] == pytest.approx(-0.37, abs=1e-12) and above["n_lo"] >= 100
    assert np.isnan(S.power_law_fit([10, 10], [1.0, 2.0])["slope"])


def test_data_efficiency_ratio_on_synthetic_power_laws():
    scratch = S.power_law_fit(np.array([10, 100, 1000]), 100.0 * np.array([10, 100, 1000]) ** -0.5)
    transfer = S.power_law_fit(np.array([10, 100, 1000]), 50.0 * np.array([10, 100, 1000]) ** -0.5)
    assert S.data_efficiency_ratio(scratch, transfer, 100) == pytest.approx(4.0, rel=1e-10)
    assert np.isnan(S.data_efficiency_ratio({"slope": 0.1, "intercept": 1.0}, transfer, 100))
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(4):
        for n in (10, 30, 100, 300):
            for m, a in (("m1-scratch", 100.0), ("m4-atomref-refit", 50.0)):
                rows.append({"functional": "r2scan", "method": m, "n_target": n, "n_train": n, "seed": seed,
                             "energy": a * n**-0.5 * np.exp(rng.normal(0, 0.03))})  # fmt: skip
    r = S.data_efficiency(pd.DataFrame(rows), "energy", n_boot=200)
    assert r["n"] == 300 and r["ratio_lo"] <= r["ratio"] <= r["ratio_hi"]
    assert r["ratio_lo"] > 3.0 and r["ratio_hi"] < 5.5 and r["extrapolated"]  # 1200 > 300: beyond scratch's range
    assert r["extrapolation_factor"] == pytest.approx(r["n_scratch_needed"] / 300)


# ---------------------------------------------------------------------------------------------------------------
# a tiny real sweep


def _tiny_set():
    from ase.io import read

    from uipbench.transfer.training_data import FIRST_ROW_UNCONVERGED, frame_group, frames_to_training_set, group_split

    by_group: dict[str, list] = {}
    for a in read(PAIRS, index=":"):
        if not set(a.get_chemical_symbols()) & set(FIRST_ROW_UNCONVERGED):
            by_group.setdefault(frame_group(a), []).append(a)
    sel = [a for g in sorted(by_group)[:6] for a in by_group[g][:2]]
    data = frames_to_training_set(sel, "r2scan", source="gpaw-pbe-r2scan-pairs")
    return data, group_split(data.ids, data.groups, seed=0)  # 4 training groups of 2 frames, 1 val, 1 test


TINY_BUDGET = S.Budget(steps_target=1, batch_size=4, min_epochs=1, max_epochs=1)


def _plan(data, split, workroot, methods=("m4-atomref-refit",), sizes=(2, 4)):
    return S.scaling_tasks({"r2scan": data}, split, sizes, seeds=(0,), methods=methods, budget=TINY_BUDGET,
                           start=tiny_chgnet(), workroot=workroot, dataset="tiny")  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    if not PAIRS.exists():
        pytest.skip(f"{PAIRS} not present")
    return _tiny_set()


def test_tiny_sweep_stored_and_resumed(tiny, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from uipbench.transfer import scaling_report as SR

    data, split = tiny
    store = ResultStore(tmp_path / "s.sqlite")
    sweep = S.run_scaling(_plan(data, split, tmp_path / "runs", ("m4-atomref-refit", "zero-shot-refit")), store,
                          progress=False)  # fmt: skip
    assert (sweep.summary.ok, sweep.summary.failed) == (4, 0), sweep.summary.failures
    df = S.scaling_frame(sweep)
    assert len(df) == 4 and list(df["n_train"]) == [2, 4, 2, 4] and set(df["n_groups"]) == {1, 2}
    for key, rec in sweep.records.items():
        m = sweep.meta[key]
        assert rec["split"]["val"] == split["val"] and rec["split"]["test"] == split["test"]
        assert set(rec["split"]["train"]) == set(sweep.subsets[0][m["n_target"]])
        if m["method"] == "m4-atomref-refit":
            assert rec["config"]["epochs"] == m["epochs"] == 1 and m["budget"]["rule"]
    assert set(sweep.subsets[0][2]) < set(sweep.subsets[0][4])
    assert df["test_covered"].between(0, 1).all() and (df["energy_covered"].dropna() >= 0).all()
    full = df["test_covered"] == 1
    assert np.allclose(df.loc[full, "energy_covered"], df.loc[full, "energy"])
    again = S.run_scaling(_plan(data, split, tmp_path / "runs", ("m4-atomref-refit", "zero-shot-refit")), store,
                          progress=False)  # fmt: skip
    assert again.summary.skipped == 4 and again.summary.ok == 0
    pd.testing.assert_frame_equal(S.scaling_frame(again), df)
    fits = SR.fit_table(df)
    assert set(fits["method"]) == {"m4-atomref-refit"} and (fits["n_points"] == 2).all()
    fig = SR.fig5(df, fits)
    assert len(fig.axes) == 2


_CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import test_scaling as t
from uipbench.store import ResultStore
from uipbench.transfer import scaling as S, training_runs

run = training_runs.run_training_task
calls = []


def slow_after_first(args):  # the first run finishes and is stored; the second is in flight when the kill comes
    if calls:
        Path(sys.argv[3]).write_text("in flight")
        time.sleep(60)
    calls.append(1)
    return run(args)


training_runs.run_training_task = slow_after_first
data, split = t._tiny_set()
S.run_scaling(t._plan(data, split, sys.argv[2] + "/runs", ("m4-atomref-refit", "m1-scratch")),
              ResultStore(sys.argv[2] + "/s.sqlite"), progress=False)
"""


def test_sweep_resumes_after_sigkill(tiny, tmp_path):
    """A sweep SIGKILLed after its first stored run (another process) finishes here: the stored run is not
    redone, the rest are computed, and every record equals an uninterrupted sweep's."""
    data, split = tiny
    flag = tmp_path / "flag"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(Path(__file__).parent), str(tmp_path), str(flag)],
                            env=env)  # fmt: skip
    deadline = time.time() + 120
    try:
        while time.time() < deadline and not flag.exists() and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL and flag.exists()
    store = ResultStore(tmp_path / "s.sqlite")
    before = store.frame("transfer-training")
    assert len(before) == 1 and (before["status"] == "ok").all()
    first_key = before["key"].iloc[0]
    first_payload = store.get(first_key).payload
    plan = _plan(data, split, tmp_path / "runs", ("m4-atomref-refit", "m1-scratch"))
    resumed = S.run_scaling(plan, store, progress=False)
    assert resumed.summary.skipped == 1 and resumed.summary.ok == 3 and resumed.summary.failed == 0
    assert store.get(first_key).payload == first_payload, "a finished run was redone"
    straight = S.run_scaling(_plan(data, split, tmp_path / "straight", ("m4-atomref-refit", "m1-scratch")),
                             ResultStore(tmp_path / "straight.sqlite"), progress=False)  # fmt: skip
    assert set(straight.records) == set(resumed.records)
    for key, rec in straight.records.items():
        got = resumed.records[key]
        for field in ("final_parameters_sha256", "test_predictions", "history", "atomref", "split"):
            assert got[field] == rec[field], (resumed.meta[key]["method"], resumed.meta[key]["n_target"], field)


def test_determined_test_frames_lie_in_the_span_of_training_compositions():
    fr = {"cu": {"Cu": 1.0}, "al": {"Al": 1.0}, "aucu3": {"Au": 0.25, "Cu": 0.75}, "au": {"Au": 1.0},
          "cual": {"Cu": 0.5, "Al": 0.5}, "ni": {"Ni": 1.0}, "cu2": {"Cu": 1.0}}  # fmt: skip
    preds = [{"id": i} for i in ("au", "cual", "ni", "cu2", "aucu3")]
    ids = lambda out: [p["id"] for p in out]
    assert ids(S.determined(preds, ["cu", "al", "aucu3"], fr)) == ["au", "cual", "cu2", "aucu3"]
    assert ids(S.determined(preds, ["aucu3"], fr)) == ["aucu3"]  # Au and Cu only together: neither is fixed
    assert ids(S.determined(preds, ["cu", "cu2"], fr)) == ["cu2"]
    assert S.determined(preds, [], fr) == []


def test_sweep_on_a_process_pool_equals_serial(tiny, tmp_path):
    """The same plan on two spawned workers (one torch thread each) gives the serial sweep's records."""
    data, split = tiny
    serial = S.run_scaling(_plan(data, split, tmp_path / "a"), ResultStore(tmp_path / "a.sqlite"), progress=False)
    pool = S.run_scaling(_plan(data, split, tmp_path / "b"), ResultStore(tmp_path / "b.sqlite"), backend="process",
                         n_workers=2, progress=False)  # fmt: skip
    assert pool.summary.ok == 2 and not pool.failures
    for key, rec in serial.records.items():
        assert pool.records[key]["final_parameters_sha256"] == rec["final_parameters_sha256"]
        assert pool.records[key]["test_predictions"] == rec["test_predictions"]
