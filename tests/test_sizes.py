"""Byte sizes with units (``ground.sizes``) and the ``max_bytes`` spec key that reads them."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitstore import LocalRaw, MemoryRaw, SpecError
from bitstore.ground.sizes import UNITS, byte_size, human_bytes
from bitstore.spec import from_spec, load_spec

_UNIT_SPELLINGS = st.sampled_from(sorted(UNITS)).flatmap(
    lambda u: st.sampled_from([u, u.upper(), u.capitalize(), u[:-1].upper() + u[-1] if len(u) > 1 else u]))


@given(st.integers(0, 10**6), _UNIT_SPELLINGS, st.sampled_from(["", " "]))
def test_a_whole_number_with_a_unit_is_that_many_units(n, unit, space):
    assert byte_size(f"{n}{space}{unit}") == n * UNITS[unit.lower()]


@given(st.integers(0, 10**15))
def test_an_int_or_its_digits_is_itself(n):
    assert byte_size(n) == n == byte_size(str(n))


@given(st.integers(0, 10**6), st.integers(0, 999), st.sampled_from([u for u in UNITS if u != "b"]))
def test_a_decimal_is_exact_and_rounded_down(whole, thousandths, unit):
    text = f"{whole}.{thousandths:03d}{unit}"
    assert byte_size(text) == (whole * 1000 + thousandths) * UNITS[unit] // 1000


def test_documented_examples():
    assert byte_size("512MiB") == 512 * 2**20
    assert byte_size("20GiB") == 20 * 2**30
    assert byte_size("1TB") == 10**12
    assert byte_size("10MB") == 10**7
    assert byte_size("1.5GiB") == 3 * 2**29
    assert human_bytes(3 * 2**29) == "1.5 GiB" and human_bytes(512) == "512 B"


_BAD = ["", "G", "20G", "20 gigs", "-1", "1.5", "1.5B", "1e9", "0x10", "1,000", "MiB", "1 Mi B", "2.GiB", ".5GiB"]


@pytest.mark.parametrize("bad", [*_BAD, -1, 1.5, True, None, [], b"1MiB"])
def test_anything_else_is_refused(bad):
    with pytest.raises(ValueError):
        byte_size(bad)


@given(st.text(max_size=12))
def test_any_text_is_a_size_or_a_value_error(text):
    try:
        assert byte_size(text) >= 0
    except ValueError:
        pass


@pytest.mark.parametrize("kind", ["local", "memory"])
@given(value=st.integers(0, 2**50) | st.builds(lambda n, u: f"{n}{u}", st.integers(0, 4096),
                                               st.sampled_from(sorted(UNITS))))
def test_the_spec_key_takes_units_on_local_and_memory_tiers(kind, value, tmp_path_factory):
    tier = {"type": kind, "max_bytes": value}
    if kind == "local":
        tier["prefix"] = str(tmp_path_factory.getbasetemp() / "bounded")
    assert load_spec({"tier": [tier]}).tiers[0]["max_bytes"] == byte_size(value)


@pytest.mark.parametrize("kind", ["local", "memory"])
@pytest.mark.parametrize("bad", ["20 gigs", "20G", -5, 1.5, True, [1], {"a": 1}, "-1KiB"])
def test_a_bad_value_is_a_spec_error_naming_the_key(kind, bad, tmp_path):
    tier = {"type": kind, "max_bytes": bad} | ({"prefix": str(tmp_path)} if kind == "local" else {})
    with pytest.raises(SpecError) as info:
        load_spec({"tier": [tier]})
    assert info.value.key == "tier[1].max_bytes"
    assert "512MiB" in str(info.value)  # says what would do


def test_built_stores_get_the_bound_in_bytes(tmp_path):
    store = from_spec({"keys": "uri", "tier": [{"type": "local", "prefix": str(tmp_path), "max_bytes": "1.5KiB"}]})
    local = store.sources[0]
    assert isinstance(local, LocalRaw) and local.max_bytes == 1536
    store = from_spec({"tier": [{"type": "memory", "max_bytes": "1MB", "role": "cache"}]})
    assert isinstance(store.cache.base_store, MemoryRaw) and store.cache.base_store.max_bytes == 10**6


def test_constructors_take_units_and_refuse_nonsense(tmp_path):
    assert LocalRaw(tmp_path, max_bytes="2KiB").max_bytes == 2048
    assert MemoryRaw("2KiB").max_bytes == 2048
    for bad in ("2 kilos", -1, 1.5):
        with pytest.raises(ValueError):
            LocalRaw(tmp_path, max_bytes=bad)
        with pytest.raises(ValueError):
            MemoryRaw(bad)
    with pytest.raises(ValueError, match="needs a root"):
        LocalRaw(max_bytes=100)
