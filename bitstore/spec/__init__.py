"""Store specs: a dict or TOML file (``load``) turned into a ready ``Store``; the one place that knows every
tier type by name (each backend declares its own fields beside it).

May import ``backends``, ``core``, ``engine`` and ``ground``.
"""
from .load import TIER_TYPES, Spec, declaration, default_spec, from_spec, load_spec, load_spec_or_default
from .url_stores import from_url, from_urls, url_spec
from .urls import parse_url

__all__ = ["Spec", "load_spec", "from_spec", "default_spec", "load_spec_or_default", "declaration", "TIER_TYPES",
           "from_url", "from_urls", "url_spec", "parse_url"]
