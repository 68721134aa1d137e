"""``python -m bitstore.cli``: the ``bitstore`` command."""
from .main import entry

entry()
