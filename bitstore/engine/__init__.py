"""The batch engine behind ``get_many``: threads (``batch``), the event loop (``loop``, ``aio``), worker processes
(``procs``), and the protocol stores answer to take the loop's fast path (``routes``).

May import ``bitstore.ground`` only. It never names a store class: a store hands the engine a route
(``Store.async_route``), so a user's own ``Store`` subclass can take the fast path as bitstore's own do.
"""
