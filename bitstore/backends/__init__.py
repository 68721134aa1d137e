"""Raw stores, one module each (``local``, ``memory``, ``s3``, ``gcs``), what the cloud ones share (``_cloud``,
``_fast``, ``_client``, ``_body``, ``_streams``) and the one map from SDK errors to bitstore's (``_errors``).

Cloud SDKs are imported only when a client is first needed. May import ``core``, ``engine`` and ``ground``.
Each backend declares its spec fields (``TIER``) and answers the engine's route protocol where it has a fast path.
"""
