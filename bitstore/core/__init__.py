"""The model: ``Store`` and its single and bulk operations, ``Tier``, ``Composite``, the hash-keyed stores
(``hashed``; the SHA1 and SHA-256 families in ``sha1``, ``sha256``, by name in ``keys``), the negative cache
behind ``missing_ttl`` (``missing``), put/stat in bulk (``bulk``) and cache upkeep (``upkeep``).

May import ``bitstore.ground`` and ``bitstore.engine``; never a backend, a spec or an adapter.
"""
