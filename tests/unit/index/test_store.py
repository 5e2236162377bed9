"""The search store's own plumbing (`sensorium.index.store`)."""

from __future__ import annotations

import subprocess
import sys


def test_lancedb_is_imported_without_the_rest_clients_api_modules():
    """A cold `sensorium search` pays lancedb's import: not its REST client's API modules (the
    half of it a local store never uses), which still import when something asks for them."""
    code = (
        "import sys\n"
        "from sensorium.index.store import import_lancedb\n"
        "lancedb = import_lancedb()\n"
        "assert 'lance_namespace_urllib3_client.api' not in sys.modules, 'the REST API was imported'\n"
        "import lance_namespace_urllib3_client.api.table_api as api\n"
        "assert api.TableApi\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
