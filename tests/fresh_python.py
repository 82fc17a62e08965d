"""Run test code in a fresh Python that has never imported TensorFlow (MuJoCo rendering crashes
next to it): `run_fresh(tmp_path, code)` returns the JSON value the code passed to `report`."""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[1]
PRELUDE = """
import json, sys
import numpy as np
import envs
from envs import wrappers
def report(value):
    print(json.dumps(value))
"""


def run_fresh(tmp_path, code, name='check.py'):
    script = tmp_path / name
    script.write_text(textwrap.dedent(PRELUDE) + textwrap.dedent(code))
    path = os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')])
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            cwd=str(tmp_path), env={**os.environ, 'PYTHONPATH': path, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
