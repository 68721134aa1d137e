"""The model: ``Store`` and its single and bulk operations, ``Tier``, ``Composite``, the SHA1 stores, the negative
cache behind ``missing_ttl`` (``missing``), put/stat in bulk (``bulk``) and cache upkeep (``upkeep``).

May import ``bitstore.ground`` and ``bitstore.engine``; never a backend, a spec or an adapter.
"""
