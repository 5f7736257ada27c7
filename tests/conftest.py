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


SANDBOX_DAY = "2024-03-01"  # a Friday: the local paper broker's first simulated session
TRADING_SPEC = (
    Path(__file__).resolve().parents[1].parent / "shared/specs/alpaca-trading-openapi.yaml"
)


@pytest.fixture
def contract():
    """Every exchange with the local paper broker, checked against Alpaca's trading spec."""
    from live.sandbox.contract import ContractRecorder

    recorder = ContractRecorder(TRADING_SPEC)
    yield recorder
    recorder.assert_valid()


@pytest.fixture
def sandbox(tmp_path, contract):
    """The local paper broker on SANDBOX_DAY (test files with other needs define their own)."""
    from live.sandbox import SandboxServer

    with SandboxServer(tmp_path / "sandbox.db", date=SANDBOX_DAY, on_exchange=contract) as server:
        yield server


@pytest.fixture
def client(sandbox):
    return sandbox.trading_client()
