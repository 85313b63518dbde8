import sys
from pathlib import Path

# tests/ on sys.path so that specs can name test operators as `engine_ops:Name`
_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
