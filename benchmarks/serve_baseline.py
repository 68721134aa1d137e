"""The smallest fair rival of ``bitstore serve`` for ``benchmarks.serve``: uvicorn + Starlette, one route that reads
the blob's file (``$BENCH_FOLDER/<sha1>``) and returns its bytes. Run: ``uvicorn benchmarks.serve_baseline:app``."""
from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

FOLDER = os.environ.get("BENCH_FOLDER", ".")


async def blob(request) -> Response:
    with open(os.path.join(FOLDER, request.path_params["sha1"]), "rb") as f:
        return Response(f.read(), media_type="application/octet-stream")


app = Starlette(routes=[Route("/blobs/{sha1}", blob)])
