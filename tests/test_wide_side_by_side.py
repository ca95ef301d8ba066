"""The wider side by side's shapes drawn at random from its classes (``--random``)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "wide_side_by_side.py"


@pytest.fixture(scope="module")
def wide():
    spec = importlib.util.spec_from_file_location("wide_side_by_side", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_random_shapes_lie_in_the_classes_and_repeat_by_seed(wide):
    shapes = wide.random_shapes(200, seed=3)
    assert len(shapes) == 200
    for label, n, d, k, dtype in shapes:
        assert wide.RANDOM_N[0] <= n <= wide.RANDOM_N[1] and wide.RANDOM_D[0] <= d <= wide.RANDOM_D[1]
        assert wide.RANDOM_K[0] <= k <= wide.RANDOM_K[1] and k < n and n * d * k <= wide.RANDOM_MAX_WORK
        assert wide.parse_shape(label) == (label, n, d, k, dtype)  # a label reruns the shape with --shapes
    assert {s[4] for s in shapes} == {"float32", "float64"}
    assert min(s[2] for s in shapes) <= 4  # d <= 4 is one of the classes
    assert wide.random_shapes(5, seed=3) == shapes[:5]
    assert wide.random_shapes(5, seed=4) != shapes[:5]


@pytest.mark.parametrize("argv", [["--random", "0"], ["--random", "3", "--quick"],
                                  ["--random", "3", "--shapes", "1000,2,3"]])
def test_random_refuses_a_bad_count_or_a_second_list(wide, argv, capsys):
    with pytest.raises(SystemExit):
        wide.main(argv)
    assert "--random=" in capsys.readouterr().err


@pytest.mark.parametrize("text, parsed", [("photo,256", ("photo,256", 0, 3, 256, "float32")),
                                          ("photo,16,float64", ("photo,16,float64", 0, 3, 16, "float64")),
                                          ("2000,4,8", ("2000,4,8", 2000, 4, 8, "float32"))])
def test_shapes_name_the_photo_by_its_colours(wide, text, parsed):
    assert wide.parse_shape(text) == parsed


@pytest.mark.parametrize("text", ["photo", "photo,0", "0,3,16", "10,2,20", "photo,8,float16", "3,x,2"])
def test_a_bad_shape_is_refused_by_name(wide, text):
    import argparse
    import re

    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(text))):
        wide.parse_shape(text)


def test_as_avx2_takes_every_contender_off_avx512(wide):
    env = wide.avx2_environment()
    features = env["NUMBA_CPU_FEATURES"].split(",")
    assert not [f for f in features if f.startswith("+") and f[1:].startswith(("avx512", "amx", "evex512"))]
    assert "+sse2" in features  # the rest of the CPU's features stay
    assert env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2" and env["FAISS_OPT_LEVEL"] == "avx2"
    from impls.numba_plan import host_isa

    assert host_isa({f[1:]: f[0] == "+" for f in features}) == "avx2"
