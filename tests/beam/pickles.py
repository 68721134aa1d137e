"""Pickle inspection for the Beam tests: what a pickled DoFn or handler holds."""
from __future__ import annotations

import base64
import bz2
import io
import pickle
import threading
import zlib

from apache_beam.internal import pickler
from apache_beam.internal.cloudpickle import cloudpickle
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import PANE_INFO_UNKNOWN, WindowedValue

from bitstore import Store


def all_pickles(obj) -> list[bytes]:
    """``obj`` pickled the ways Beam and users do: Beam's pickler (decompressed), cloudpickle, pickle."""
    raw = base64.b64decode(pickler.dumps(obj))
    try:
        beam_bytes = zlib.decompress(raw)
    except zlib.error:
        beam_bytes = bz2.decompress(raw)
    return [beam_bytes, cloudpickle.dumps(obj), pickle.dumps(obj)]


def pickled_objects(obj) -> list:
    """Every object the pickle of ``obj`` holds (standard pickle and Beam's cloudpickle walk the same graph)."""
    seen = []

    class Recorder(cloudpickle.Pickler):
        def persistent_id(self, value):
            seen.append(value)
            return None

    Recorder(io.BytesIO()).dump(obj)
    return seen


def assert_clean(obj, *secrets: str) -> None:
    """No secret in any pickle of ``obj``, and no store, client or lock inside it."""
    for blob in all_pickles(obj):
        for secret in secrets:
            assert secret.encode() not in blob
    for value in pickled_objects(obj):
        assert not isinstance(value, (Store, type(threading.Lock()))), value
        assert not type(value).__module__.startswith(("botocore", "boto3", "google.cloud", "urllib3")), value


def run_bundle(dofn, elements):
    dofn.setup()
    dofn.start_bundle()
    out = []
    for element in elements:
        out.extend(dofn.process(element, windowed=WindowedValue(element, Timestamp(0), (GlobalWindow(),),
                                                                PANE_INFO_UNKNOWN)))
    out.extend(dofn.finish_bundle())
    return out
