"""The ground floor: what every other layer stands on.

Owns the error classes (``errors``), the answer records (``results``), the retry policy (``retry``), rate and
concurrency limits (``limits``), per-tier statistics (``stats``), the declarations of spec fields (``fields``),
memoryview handling (``views``), logging helpers (``log``), temp files (``tempfiles``) and the version.
Imports nothing from bitstore.
"""
