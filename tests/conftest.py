import sys
from pathlib import Path

import pytest

# tests/ on sys.path so that specs can name test operators as `engine_ops:Name`
_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture(autouse=True)
def _calls_file(tmp_path, monkeypatch):
    """Where the test operators record their calls (support.Calls reads it): one file per
    test, set for this process and the stardag processes it starts."""
    monkeypatch.setenv("STARDAG_TEST_CALLS", str(tmp_path / "calls.txt"))
