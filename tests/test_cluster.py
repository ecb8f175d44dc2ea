"""Independent fits on a dask.distributed cluster (``client=``): the bootstrap, profiles and
many-responses fits give the local answers, with feedback, clean errors and a worker lost."""

from __future__ import annotations

import gc
import operator
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import cluster
from lmm.inference.common import Progress

distributed = pytest.importorskip("distributed")

FORMULA = "Reaction ~ Days + (Days | Subject)"
RHS = "~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def client():
    # Two worker processes, as a cluster's workers are: everything a task needs travels
    # pickled. The scheduler's web server on a free port (8787 may be taken: a warning).
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            distributed.Client(lc) as c:
        yield c


@pytest.fixture(scope="module")
def sleep():
    return lmm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fit(sleep):
    return lmm.lmer(FORMULA, sleep)


@pytest.fixture(scope="module")
def responses(sleep):
    """Sleepstudy with 60 noisy copies of Reaction, some values missing: in one response
    ten leading rows (a subject's), in others scattered ones."""
    rng = np.random.default_rng(7)
    Y = sleep["Reaction"].to_numpy()[:, None] + rng.normal(0, 25, (len(sleep), 60))
    Y[rng.random(Y.shape) < 0.03] = np.nan
    Y[:10, 4] = np.nan
    names = [f"r{j}" for j in range(Y.shape[1])]
    return pd.concat([sleep, pd.DataFrame(Y, columns=names)], axis=1), names


def _assert_many_equal(got: lmm.ManyResult, want: lmm.ManyResult, rtol: float = 0.0,
                       estimates: tuple = ("theta", "beta", "se", "sigma", "criterion", "df")) -> None:
    assert got.names == want.names
    for key in estimates:
        a, b = getattr(got, key), getattr(want, key)
        if rtol:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=key)
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)
    for key in ("converged", "singular", "nobs", "error"):
        np.testing.assert_array_equal(getattr(got, key), getattr(want, key), err_msg=key)


# --- the answers are the local ones -------------------------------------------------------------


def test_bootstrap_replicates_equal_the_local_ones(fit, client):
    want = fit.bootstrap(300, seed=11)
    got = fit.bootstrap(300, seed=11, client=client)
    assert list(got.replicates.columns) == list(want.replicates.columns)
    # The same replicates (each its own stream of the seed); the fits of a block of
    # responses differ from those of another blocking by rounding only.
    np.testing.assert_allclose(got.replicates.to_numpy(), want.replicates.to_numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got.converged, want.converged)
    pd.testing.assert_series_equal(got.estimates, want.estimates)
    assert got.n_jobs == 2  # two workers, a thread per task


def test_bootstrap_interval_through_confint(fit, client):
    want = fit.confint(method="boot", nsim=100, seed=2)
    got = fit.confint(method="boot", nsim=100, seed=2, client=client)
    pd.testing.assert_frame_equal(got, want, rtol=1e-10)


def test_profile_curves_and_intervals_equal_the_local_ones(fit, client):
    want = fit.profile()
    got = fit.profile(client=client)
    assert list(got.curves) == list(want.curves)
    for name in want.curves:
        pd.testing.assert_frame_equal(got.curves[name], want.curves[name], check_exact=True, obj=name)
    pd.testing.assert_frame_equal(got.confint(), want.confint(), check_exact=True)
    pd.testing.assert_frame_equal(fit.confint(parm=["Days", ".sig01"], client=client),
                                  fit.confint(parm=["Days", ".sig01"]), check_exact=True)


def test_lmer_many_with_missing_values_and_satterthwaite_equals_local(responses, client):
    data, names = responses
    want = lmm.lmer_many(RHS, data, responses=names, satterthwaite=True, chunk_size=7)
    got = lmm.lmer_many(RHS, data, responses=names, satterthwaite=True, chunk_size=7, client=client)
    assert (want.nobs < len(data)).sum() > 10  # responses with rows of their own
    # Blocks of at most chunk_size responses, here as there: the same fits to the last bit.
    _assert_many_equal(got, want)
    # By the client's own blocks: rounding apart (Satterthwaite's df differentiate the
    # criterion numerically, which magnifies it).
    got = lmm.lmer_many(RHS, data, responses=names, satterthwaite=True, client=client)
    _assert_many_equal(got, want, rtol=1e-10, estimates=("theta", "beta", "se", "sigma", "criterion"))
    np.testing.assert_allclose(got.df, want.df, rtol=1e-6)
    np.testing.assert_allclose(got.result("r4").fixef, want.result("r4").fixef, rtol=1e-10)


def test_fit_many_written_to_parquet_equals_local(responses, client, tmp_path):
    pytest.importorskip("pyarrow")
    data, names = responses
    model = lmm.LinearMixedModel(FORMULA, data)
    Y = data[names]
    want = model.fit_many(Y, satterthwaite=True, chunk_size=5).to_frame()
    path = model.fit_many(Y, satterthwaite=True, chunk_size=5, output=tmp_path / "fits.parquet", client=client)
    pd.testing.assert_frame_equal(pd.read_parquet(path), want, check_exact=True)


def test_streamed_blocks_come_back_in_order(responses, client, tmp_path):
    # An iterator of blocks (length unknown): read as results come back, written in order.
    data, names = responses
    model = lmm.LinearMixedModel(FORMULA, data)
    blocks = (data[names[j:j + 4]] for j in range(0, len(names), 4))
    path = lmm.many.fit_many(model, blocks, output=tmp_path / "fits.csv", client=client)
    want = lmm.many.fit_many(model, data[names], chunk_size=4).to_frame()
    got = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert list(got["response"].unique()) == names
    np.testing.assert_allclose(got["estimate"], want["estimate"], rtol=1e-12)


# --- feedback -------------------------------------------------------------------------------


def test_verbose_prints_a_line_per_block_and_no_bar(fit, responses, client, capsys):
    fit.bootstrap(40, seed=1, client=client, verbose=True)
    out, err = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if "bootstrap:" in ln]
    assert len(lines) >= 2 and "40/40 replicates" in lines[-1] and err == ""
    data, names = responses
    lmm.lmer_many(RHS, data, responses=names[:12], client=client, verbose=True)
    out, err = capsys.readouterr()
    assert "fits: 12/12 fits" in out.splitlines()[-1] and err == ""
    fit.profile(["Days"], client=client, verbose=True)
    out, err = capsys.readouterr()
    assert "profile: 1/1 Days:" in out and err == ""
    fit.bootstrap(20, seed=1, client=client)
    assert capsys.readouterr() == ("", "")  # a script's default: silent


def test_bar_shows_on_a_terminal(fit, responses, client, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(lmm.many, "_SHOW_AFTER", 0.0)  # as if the work ran long
    data, names = responses
    lmm.lmer_many(RHS, data, responses=names[:12], client=client)
    assert "fits" in capsys.readouterr().err
    fit.bootstrap(20, seed=1, client=client)
    assert "bootstrap" in capsys.readouterr().err
    fit.bootstrap(20, seed=1, client=client, progress=False)
    assert capsys.readouterr().err == ""


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["tcp://127.0.0.1:8786", object(), 2])
def test_a_client_that_is_not_one_is_a_type_error(fit, responses, bad):
    data, names = responses
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        fit.bootstrap(10, client=bad)
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        fit.profile(client=bad)
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        lmm.lmer_many(RHS, data, responses=names[:2], client=bad)


def test_a_cluster_for_a_client_says_how_to_get_one(client):
    with pytest.raises(TypeError, match=r"distributed.Client\(cluster\)"):
        cluster.as_client(client.cluster)


def test_without_distributed_the_error_says_what_to_install(fit, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "lmm\[dask\]"'):
        fit.bootstrap(10, client=object())


def test_import_lmm_does_not_import_dask():
    code = ("import sys, lmm, lmm.cluster, lmm.many, lmm.inference; "
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert out.strip() == "[]"


def test_vary_with_a_client_is_not_implemented(sleep, client):
    with pytest.raises(NotImplementedError, match="vary"):
        lmm.lmer_many(FORMULA, sleep, vary=sleep[["Days"]].rename(columns={"Days": "g"}), client=client)


def _scheduler_tasks(client) -> dict:
    return client.run_on_scheduler(lambda dask_scheduler: {k: (t.state, [str(w) for w in t.who_wants])
                                                           for k, t in dask_scheduler.tasks.items()})


def test_a_task_error_is_raised_here_and_the_rest_cancelled(client):
    # operator.truediv(shared, block): importable on every worker; block 0 raises.
    blocks = [(1.0, 1, ""), (0.0, 1, ""), *[(float(k), 1, "") for k in range(2, 40)]]
    with pytest.raises(ZeroDivisionError, match="division by zero") as raised:
        list(cluster.map_blocks(client, operator.truediv, 1.0, blocks, Progress(len(blocks), False)))
    # The exception's traceback holds map_blocks' frame and its futures: let them go.
    del raised
    gc.collect()
    deadline = time.monotonic() + 30
    while _scheduler_tasks(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _scheduler_tasks(client) == {}  # nothing left running or held, the shared data included
    out = list(cluster.map_blocks(client, operator.truediv, 6.0, [(2.0, 1, ""), (3.0, 1, "")], Progress(2, False)))
    assert out == [3.0, 2.0]


# --- what travels ---------------------------------------------------------------------------


def test_tasks_return_numbers_and_results_pickle(fit, responses, client):
    data, names = responses
    many = lmm.lmer_many(RHS, data, responses=names[:6], client=client)
    work = lmm.many._Responses(lmm.LinearMixedModel(FORMULA, data), True, 1, False, False, None)
    part = lmm.many._responses_task(work, data[names[:3]].to_numpy())  # (the model uses every row)
    assert all(isinstance(v, np.ndarray) for v in part.values())
    assert pickle.loads(pickle.dumps(many)).beta.shape == (6, 2)
    boot = fit.bootstrap(10, seed=1, client=client)
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(boot)).replicates, boot.replicates)


# --- a worker lost --------------------------------------------------------------------------


def test_a_worker_killed_while_tasks_run_gives_the_same_answer(fit, client, monkeypatch):
    want = fit.bootstrap(3000, seed=5)
    pids = client.run(os.getpid)
    killed: list[int] = []
    update = Progress.update

    def kill_a_busy_worker(self, k, note=""):
        # At the first block back, the other blocks are out: kill a worker running one.
        if not killed:
            busy = [addr for addr, keys in client.processing().items() if keys]
            if busy:
                killed.append(pids[busy[0]])
                os.kill(pids[busy[0]], signal.SIGKILL)
        update(self, k, note)

    monkeypatch.setattr(Progress, "update", kill_a_busy_worker)
    got = fit.bootstrap(3000, seed=5, client=client)
    assert killed, "no worker was busy to kill"
    np.testing.assert_allclose(got.replicates.to_numpy(), want.replicates.to_numpy(), rtol=1e-10, atol=1e-12)
    client.wait_for_workers(2, timeout=60)  # (the nanny starts the worker again)
    assert killed[0] not in client.run(os.getpid).values()
