"""The numeric core stays pure: importing it loads no Kafka, faust or SQL code."""

import subprocess
import sys

FORBIDDEN = ("aiokafka", "faust", "sqlalchemy", "mode", "psycopg")


def test_model_and_eval_import_no_io_libraries() -> None:
    code = (
        "import sys, importlib\n"
        "for name in ('streamrec.model', 'streamrec.eval.prequential'):\n"
        "    importlib.import_module(name)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"pure modules pulled in: {out.stdout.strip()}"
