import sys
from pathlib import Path

import pytest

# tests import small helpers (shared_data) from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def _private_caches(tmp_path_factory, monkeypatch):
    """Tests never read or fill the user's caches or journal: one private set per worker."""
    root = tmp_path_factory.getbasetemp() / "tradeship-cache"
    monkeypatch.setenv("TRADESHIP_CACHE_DIR", str(root))
    monkeypatch.setenv("TRADESHIP_JOURNAL", f"sqlite:{root / 'journal.sqlite'}")
