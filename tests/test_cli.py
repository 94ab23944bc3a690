"""The README's commands: `make demo` runs `bgmm demo`, which must print the model and write a PNG."""

import pathlib
import re

import pytest

from bgmm.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_demo_prints_model_and_writes_picture(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for needle in ("Chosen model", "weights", "means", "covariances", "log-likelihood", "BIC",
                   "converged"):
        assert needle in text
    assert str(out.resolve()) in text
    assert out.stat().st_size > 20_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_commands_are_wired():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert re.search(r"^demo:.*\n\t.*bgmm demo", makefile, re.M)
    assert re.search(r"^test:.*\n\t.*pytest", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--max-components" in capsys.readouterr().out


# ---------------------------------------------------------------- bgmm fit / bgmm select
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bgmm  # noqa: E402
from bgmm.cli import build_parser  # noqa: E402


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    df = bgmm.load_faithful(as_frame=True)
    df = df.assign(site="yellowstone", noise=np.random.default_rng(0).normal(size=len(df)))
    df.to_csv(d / "faithful.csv", index=False)
    df.to_parquet(d / "faithful.parquet")
    return d, df


def test_fit_csv_writes_estimator_that_predicts_like_a_direct_fit(data_files, tmp_path, capsys):
    d, df = data_files
    out = tmp_path / "res"
    rc = main(["fit", str(d / "faithful.csv"), "--n-components", "2", "--covariance-type",
               "full", "--columns", "eruptions,waiting", "--n-init", "3", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    for needle in ("converged", "log-likelihood", "BIC", "weight", "mean[eruptions]",
                   "sd[waiting]", str((tmp_path / "res.npz").resolve()),
                   str((tmp_path / "res.png").resolve())):
        assert needle in text, needle
    gm = bgmm.load_estimator(tmp_path / "res.npz")
    assert list(gm.feature_names_in_) == ["eruptions", "waiting"]
    # the library's defaults (tol, max_iter), as `select` uses
    direct = bgmm.GaussianMixture(2, covariance_type="full", n_init=3,
                                  random_state=0).fit(df[["eruptions", "waiting"]])
    X = df[["eruptions", "waiting"]]
    np.testing.assert_allclose(gm.predict_proba(X), direct.predict_proba(X), atol=1e-10)
    assert (tmp_path / "res.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "res.nc").exists()


def test_fit_parquet_one_column_and_prior(data_files, tmp_path, capsys):
    d, df = data_files
    rc = main(["fit", str(d / "faithful.parquet"), "-k", "2", "--columns", "eruptions",
               "--prior", "default", "--out", str(tmp_path / "one.png")])
    assert rc == 0
    assert "MAP" in capsys.readouterr().out
    gm = bgmm.load_estimator(tmp_path / "one.npz")
    assert gm.prior == "default" and gm.means_.shape == (2, 1)
    assert (tmp_path / "one.png").stat().st_size > 10_000


def test_fit_reports_unknown_columns_and_files(data_files, tmp_path, capsys):
    d, _ = data_files
    assert main(["fit", str(d / "faithful.csv"), "-k", "2", "--columns", "eruptions,nope",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "eruptions" in err
    assert main(["fit", str(tmp_path / "missing.csv"), "-k", "2", "--out",
                 str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", str(d / "faithful.csv"), "-k", "0", "--out", str(tmp_path / "x")])


def test_read_table_rejects_a_numeric_column_with_bad_cells(tmp_path):
    import gzip

    from bgmm.cli import read_table

    (tmp_path / "bad.csv").write_text("a,b,name\n1,2,u\n3,x,v\n4,5,w\n6,7,z\n")
    with pytest.raises(ValueError, match=r"column 'b' is numeric but for entries such as 'x' "
                                         r"\(row 1\)"):
        read_table(tmp_path / "bad.csv")
    assert list(read_table(tmp_path / "bad.csv", "a")) == ["a"]
    with gzip.open(tmp_path / "t.tsv.gz", "wt") as f:
        f.write("a\tb\n1\t2\n3\t4\n5\t6\n")
    assert read_table(tmp_path / "t.tsv.gz").shape == (3, 2)  # tab-separated


def test_select_prints_table_and_writes_plot(data_files, tmp_path, capsys):
    d, df = data_files
    out = tmp_path / "study"
    rc = main(["select", str(d / "faithful.csv"), "--columns", "eruptions,waiting",
               "--max-components", "3", "--covariance-types", "full,diag", "--n-init", "2",
               "--out", str(out), "--save-best"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "chosen by BIC" in text and "full" in text and "diag" in text
    table = pd.read_csv(tmp_path / "study.csv", index_col=[0, 1])
    assert len(table) == 6
    ref = bgmm.GaussianMixture(2, covariance_type="full", n_init=2, random_state=0).fit(
        df[["eruptions", "waiting"]])
    np.testing.assert_allclose(table.loc[(2, "full"), "bic"],
                               ref.bic(df[["eruptions", "waiting"]]), rtol=1e-6)
    assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "study-best.npz").exists()
    with pytest.raises(SystemExit):
        main(["select", str(d / "faithful.csv"), "--covariance-types", "full,banana"])


def test_every_option_is_explained():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("demo", "fit", "select"):
        for action in sub.choices[name]._actions:
            assert action.help and len(action.help) > 10, (name, action.dest)


@pytest.mark.slow
def test_fit_mcmc_writes_posterior(data_files, tmp_path, capsys):
    d, df = data_files
    rc = main(["fit", str(d / "faithful.csv"), "-k", "2", "--columns", "eruptions,waiting",
               "--mcmc", "--num-chains", "2", "--num-warmup", "100", "--num-samples", "100",
               "--out", str(tmp_path / "post")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "r_hat" in text and "EM vs posterior" in text
    tree = bgmm.load_posterior(tmp_path / "post.nc")
    assert tree.posterior["means"].shape == (2, 100, 2, 2)


# ---------------------------------------------------------------- enable_compilation_cache
_CACHE_SCRIPT = """
import json, os, sys
import jax
from jax import monitoring
events = []
monitoring.register_event_listener(lambda name, **kw: events.append(name))
import bgmm
assert jax.config.jax_compilation_cache_dir is None, "importing bgmm set a cache"
path = bgmm.enable_compilation_cache(sys.argv[1], min_compile_time_secs=0)
bgmm.GaussianMixture(2, random_state=0).fit(bgmm.load_faithful())
print(json.dumps({"path": path, "dir": jax.config.jax_compilation_cache_dir,
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "misses": events.count("/jax/compilation_cache/cache_misses")}))
"""


def test_enable_compilation_cache_lets_a_new_process_skip_compiling(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}

    def run():
        r = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT, str(tmp_path)], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    first = run()
    assert first["path"] == first["dir"] == str(tmp_path)
    assert first["misses"] > 0 and any(tmp_path.iterdir())  # compiled and stored
    second = run()
    assert second["hits"] >= first["misses"] and second["misses"] == 0  # loaded, not compiled


def test_enable_compilation_cache_rejects_a_negative_time():
    import bgmm

    with pytest.raises(ValueError, match="min_compile_time_secs"):
        bgmm.enable_compilation_cache("unused", min_compile_time_secs=-1)
