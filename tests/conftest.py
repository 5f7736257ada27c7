import sys
from pathlib import Path

# tests import small helpers (shared_data) from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
