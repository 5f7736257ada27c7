import sys
from pathlib import Path

import pytest

# tests import small helpers (shared_data) from this folder, and the user-style strategies
# of examples/ from the project root (as `tradeship --strategy examples.x:Class` run there)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(autouse=True)
def _private_caches(tmp_path_factory, monkeypatch):
    """Tests never read or fill the user's caches or journal: one private set per worker."""
    root = tmp_path_factory.getbasetemp() / "tradeship-cache"
    monkeypatch.setenv("TRADESHIP_CACHE_DIR", str(root))
    monkeypatch.setenv("TRADESHIP_JOURNAL", f"sqlite:{root / 'journal.sqlite'}")
