"""The example scripts run and print the documents' numbers (each line is checked by the script
against the expected value; a mismatch makes it exit 1)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_documents_example_reproduces_every_result():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "documents.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "all results match"
    checked = [line for line in lines if line.endswith(" OK")]
    assert len(checked) == 11 and not any("MISMATCH" in line for line in lines)
    for expected in ("expected [330.]", "expected [16.]", "expected [22.]", "expected [ 2. 12.]"):
        assert any(expected in line for line in lines), expected
