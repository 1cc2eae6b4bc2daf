"""Malformed sweep specs and grids: a clear error naming the input and exit 2, no traceback."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from feddistort.cli import main
from synthetic.config import field_names

_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
_json = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_unknown_key = st.text(min_size=1, max_size=8).filter(
    lambda k: k not in field_names() and "=" not in k and k.strip() == k and k != ""
)
_letters = st.text(alphabet="abcdfghjklmopqrsuvwxz_", min_size=1, max_size=6)  # no e/i/n/t/y

# Each strategy yields a spec that is malformed by construction.
_bad_specs = st.one_of(
    st.lists(_json, max_size=3),  # not an object
    _scalar,
    st.builds(
        lambda k, v: {k: v},
        _unknown_key.filter(
            lambda k: (
                k not in ("kind", "base", "grid", "seeds", "methods", "metrics", "chunk", "version")
            )
        ),
        _json,
    ),
    st.builds(
        lambda v: {"seeds": v},
        st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=4), st.booleans()),
    ),
    st.builds(lambda v: {"chunk": v}, st.one_of(st.integers(max_value=0), st.lists(_scalar))),
    st.builds(lambda v: {"grid": v}, st.one_of(st.lists(_scalar, max_size=2), st.integers())),
    st.builds(lambda k, v: {"grid": {k: v}}, _unknown_key, st.lists(_scalar, max_size=2)),
    st.builds(
        lambda v: {"grid": {"lam": v}},
        st.one_of(
            st.just([]),
            st.lists(_letters, min_size=1, max_size=2),
            st.lists(st.dictionaries(st.text(max_size=2), _scalar), min_size=1, max_size=2),
            _letters.map(lambda s: s + ":1:2"),
        ),
    ),
    st.builds(lambda v: {"base": {"d": v}}, st.one_of(st.integers(max_value=5), _letters)),
    st.builds(
        lambda v: {"methods": v}, st.one_of(_letters.map(lambda s: [s]), st.just([]), st.integers())
    ),
    st.builds(lambda v: {"metrics": v}, st.one_of(_letters.map(lambda s: [s]), st.just([]))),
    st.builds(lambda v: {"kind": v}, st.text(max_size=6).filter(lambda s: s != "simulate")),
)


def _check_exit_2(argv: list[str]) -> str:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    err = stderr.getvalue()
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("feddistort sweep: error: ")
    return err


@pytest.mark.slow
@given(spec=_bad_specs)
def test_malformed_spec_exits_2(spec: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        _check_exit_2(["sweep", str(path), "--backend", "serial", "--out", f"{tmp}/o"])
        assert not (Path(tmp) / "o").exists()


@given(text=st.text(max_size=30).filter(lambda t: t.strip() != ""))
def test_spec_that_is_not_json_exits_2(text: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        assume(False)  # valid JSON text is covered by test_malformed_spec_exits_2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(text, encoding="utf-8")
        err = _check_exit_2(["sweep", str(path), "--out", f"{tmp}/o"])
        assert "expected JSON" in err


_bad_grids = st.one_of(
    st.text(max_size=12).filter(lambda t: "=" not in t),  # no KEY=
    st.builds(lambda k, v: f"{k}={v}", _unknown_key, st.text(max_size=8)),
    st.builds(lambda v: f"lam={v}", _letters),  # not a number (and not inf/nan)
    st.builds(
        lambda v: f"lam={v}",
        st.sampled_from(["", ",", "1:2", "1:2:3:4", "0:1:0", "0:1:x", "-1,2", "inf", "nan"]),
    ),
    st.builds(lambda v: f"d={v}", st.sampled_from(["1.5", "2", "x", "3:4:2"])),
)


@given(grid=_bad_grids)
def test_malformed_grid_exits_2(grid: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # "--grid=VALUE": a value such as "-:" must reach our parser, not argparse's option
        # matching (argparse would exit 2 with its own usage error, also without a traceback).
        err = _check_exit_2(["sweep", f"--grid={grid}", "--out", f"{tmp}/o"])
        assert "invalid" in err or "unknown" in err


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (b"\xff\xfe{}", ["is invalid: expected UTF-8 JSON", "byte 0"]),
        (b'{"base": {"n_mc": 2.5}}', ["n_mc=2.5 is invalid: expected an integer"]),
        (b'{"grid": {"n_mc": [64, 2.5]}}', ["n_mc=2.5 is invalid: expected an integer"]),
        (b'{"base": {"d": "12x"}}', ["d='12x' is invalid"]),
    ],
)
def test_spec_file_errors_name_the_file_or_the_field(
    tmp_path: Path, data: bytes, needles: list[str]
) -> None:
    path = tmp_path / "spec.json"
    path.write_bytes(data)
    err = _check_exit_2(["sweep", str(path), "--backend", "serial", "--out", str(tmp_path / "o")])
    for needle in needles:
        assert needle in err
    if b"\xff" in data:
        assert str(path) in err
    assert not (tmp_path / "o").exists()


def test_missing_spec_and_out_file_name_the_option(tmp_path: Path) -> None:
    err = _check_exit_2(["sweep", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")])
    assert "SPEC" in err
    assert "expected an existing file" in err
    taken = tmp_path / "afile"
    taken.write_text("keep me", encoding="utf-8")
    err = _check_exit_2(["sweep", "--grid", "lam=0:1:2", "--out", str(taken)])
    assert "--out" in err
    assert "expected a folder" in err
    assert taken.read_text(encoding="utf-8") == "keep me"
