"""``array_of``: string and binary columns from Python lists, equal to ``pa.array``'s, without importing pandas."""
from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore.integrations.columns import array_of

#: No deadline: the machine running the suite may be busy.
PROPERTY = settings(deadline=None)
KINDS = [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()]


@PROPERTY
@given(st.lists(st.one_of(st.none(), st.text(max_size=20))), st.sampled_from(KINDS))
def test_text_as_pa_array(values, kind):
    built = array_of(values, kind)
    built.validate(full=True)
    assert built.equals(pa.array(values, kind))
    assert built.null_count == values.count(None)


@PROPERTY
@given(st.lists(st.one_of(st.none(), st.binary(max_size=40))), st.sampled_from([pa.binary(), pa.large_binary()]))
def test_bytes_as_pa_array(values, kind):
    built = array_of(values, kind)
    built.validate(full=True)
    assert built.equals(pa.array(values, kind))


def test_other_types_and_values_go_to_pa_array():
    assert array_of([1, None, 3], pa.int64()).equals(pa.array([1, None, 3], pa.int64()))
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        array_of([1, "a"], pa.string())  # not all text: pa.array's own error


def test_pandas_not_imported():
    code = ("import sys, pyarrow as pa\n"
            "from bitstore.integrations.columns import array_of\n"
            "array_of(['a', None], pa.string()); array_of([b'x', None], pa.large_binary())\n"
            "assert 'pandas' not in sys.modules, 'pandas imported'\n"
            "pa.array(['a'])\n"
            "print('pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # the last line shows the test can fail: pa.array itself imports pandas where it is installed
    assert out.strip() in ("True", "False")
