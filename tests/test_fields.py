"""Spec fields: every key a tier type declares (``bitstore.ground.fields``, beside each backend) is accepted with a
valid value, refused with a wrong kind or out of range, built, and listed in the specs guide's key table.

Driven by the declarations: a field added to a backend is covered here without touching this file."""
from __future__ import annotations

import json
import math
import os
import re

import pytest

from bitstore import SpecError
from bitstore.ground.fields import RETRY, Check, Field, TierType
from bitstore.spec import TIER_TYPES, declaration, load_spec
from bitstore.spec.load import _TOP

FIELDS = [(kind, f) for kind in TIER_TYPES for f in declaration(kind).fields]
IDS = [f"{kind}.{f.name}" for kind, f in FIELDS]
RETRY_KEYS = {f.name for f in RETRY}
_CANDIDATES = [0, -1, 0.0, -0.5, math.inf, "", "zzz"]  # a check should refuse one of them (of its kind)


def _kinds(f: Field) -> tuple:
    return f.kind if isinstance(f.kind, tuple) else (f.kind,)


def _spec_with(kind: str, f: Field, value) -> dict:
    """A spec whose first tier is a minimal valid ``kind`` tier with ``f`` set to ``value`` (the rules between
    keys satisfied: ``read`` on the cache, ``cache_result`` with a cache elsewhere)."""
    fields = declaration(kind).by_name
    tier: dict = {"type": kind}
    if "prefix" in fields and f.name != "url":  # a tier's url stands for its prefix
        tier["prefix"] = fields["prefix"].example
    if "class" in fields:
        tier["class"] = fields["class"].example
    if f.name == "read":
        tier["role"] = "cache"
    tier[f.name] = value
    other = {"type": "memory", "prefix": "mem://other/"} | ({} if tier.get("role") == "cache" else {"role": "cache"})
    return {"tier": [tier, other]}


def _refuse(message, key):
    raise AssertionError(f"{key}: {message}")


@pytest.mark.parametrize("kind, f", FIELDS, ids=IDS)
def test_every_declared_field_is_accepted_with_a_valid_value_and_built(kind, f, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if f.reference == "env":  # the variables an example names are set, so the tier builds
        for var in f.example.values() if isinstance(f.example, dict) else [f.example]:
            monkeypatch.setenv(var, "value-of-" + var)
    spec = load_spec(_spec_with(kind, f, f.example))
    tier = spec.tiers[0]
    if f.name in RETRY_KEYS:
        assert tier["retry"][f.name] == f.example  # retry keys fold into one policy
    elif f.name in ("prefix", "url"):  # a url = ... becomes the tier's type and prefix
        assert "prefix" in tier and "url" not in tier
    elif f.reference == "file":
        assert tier[f.name] == os.path.join(str(tmp_path), f.example)  # relative to the spec's folder
    else:
        assert tier[f.name] == f.validate(f.example, f.name, _refuse)  # a check may normalise ("20GiB" -> bytes)
    if kind != "api":  # an api tier imports its class: test_spec covers that
        store = spec.build()
        assert len(store.sources) + (store.cache is not None and store.cache not in store.sources) == 2


@pytest.mark.parametrize("kind, f", FIELDS, ids=IDS)
def test_every_declared_field_refuses_a_value_of_the_wrong_kind(kind, f):
    kinds = _kinds(f)
    wrong = 1.5 if str in kinds and int in kinds else 7 if str in kinds else "WRONG_KIND"
    assert not isinstance(wrong, _kinds(f))
    with pytest.raises(SpecError, match="must be") as info:
        load_spec(_spec_with(kind, f, wrong))
    assert info.value.key == f"tier[1].{f.name}"


CHECKED = [(kind, f) for kind, f in FIELDS if isinstance(f.check, Check)]


@pytest.mark.parametrize("kind, f", CHECKED, ids=[f"{k}.{f.name}" for k, f in CHECKED])
def test_every_range_check_refuses_a_value_out_of_range(kind, f):
    out = [v for v in _CANDIDATES if isinstance(v, _kinds(f)) and not f.check.test(v)]
    assert out, f"no candidate value is out of range for {kind}.{f.name}: add one to _CANDIDATES"
    with pytest.raises(SpecError, match=re.escape(f.check.message)) as info:
        load_spec(_spec_with(kind, f, out[0]))
    assert info.value.key == f"tier[1].{f.name}"


@pytest.mark.parametrize("f", _TOP, ids=[f.name for f in _TOP])
def test_top_level_fields_are_declared_the_same_way(f):
    tier = [{"type": "memory"}]
    assert getattr(load_spec({f.name: f.example, "tier": tier}), f.name) == f.example
    with pytest.raises(SpecError) as info:
        load_spec({f.name: [f.example], "tier": tier})
    assert info.value.key == f.name


def test_a_field_declared_twice_is_refused():
    name = Field("name", str, "", "x")
    with pytest.raises(ValueError, match="twice"):
        TierType("twice", (name, name), lambda tier, build: None)


def test_only_declared_keys_reach_a_closed_tier():
    for kind in TIER_TYPES:
        declared = declaration(kind)
        if declared.open:
            continue
        with pytest.raises(SpecError, match="unknown key") as info:
            load_spec({"tier": [{"type": kind, "undeclared_key": 1}]})
        allowed = re.search(r"allowed: ([^)]*)", str(info.value)).group(1).split(", ")
        assert allowed == sorted({"type", *declared.by_name})


# --- the specs guide's key table (checked by tests/test_docs.py) is the declarations -------------------
def key_table() -> str:
    """The tier key table of the specs guide, from the declarations: one row per (key, value, meaning), tier types
    listed in ``TIER_TYPES`` order."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for kind in TIER_TYPES:
        for f in declaration(kind).fields:
            default = "" if f.default is None else f"; default `{json.dumps(f.default)}`"
            ref = f"; a reference ({f.reference}), never a secret value" if f.reference else ""
            rows.setdefault((f.name, f.value_doc, f.doc + default + ref), []).append(kind)
    lines = ["| key | tiers | value | meaning |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {' '.join(kinds)} | {value} | {doc} |" for (name, value, doc), kinds in rows.items()]
    return "\n".join(lines)
