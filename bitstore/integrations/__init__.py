"""Adapters to other engines and formats: Arrow (``arrow``), Spark (``spark``), Ray (``ray``), what Spark and Ray
share (``scaleout``), and the fetch job of the command line (``fetchjob``, ``jobs``, ``inputs``, ``tables``).

May import ``spec``, ``backends``, ``core``, ``engine`` and ``ground``; nothing below imports it. Their public
paths are ``bitstore.arrow``, ``bitstore.spark`` and ``bitstore.ray``.
"""
