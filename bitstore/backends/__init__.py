"""Raw stores, one module each. Cloud SDKs are imported only when a client is first needed."""
