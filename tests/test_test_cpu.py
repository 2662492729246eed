"""The suite's per-test CPU log (tests/conftest.py) and its reader
(tools/test_cpu.py): the figures CI-time changes are measured with."""
import json
import os
import subprocess
import sys
import textwrap

from tools import test_cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_log_counts_own_and_child_cpu_of_each_test(tmp_path):
  tests = tmp_path / "test_burn.py"
  tests.write_text(textwrap.dedent("""
      import subprocess, sys, time

      def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
          pass

      def test_own():
        burn(0.4)

      def test_child():
        subprocess.run([sys.executable, "-c",
                        "import time\\nend = time.process_time() + 0.4\\n"
                        "while time.process_time() < end: pass"], check=True)

      def test_idle():
        time.sleep(0.3)
      """))
  log = tmp_path / "cpu.jsonl"
  # The suite's conftest as a plugin: the burning tests live outside tests/.
  env = {**os.environ, "VIDJAX_TEST_CPU_LOG": str(log),
         "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])}
  subprocess.run([sys.executable, "-m", "pytest", "-q", "-n0", "-p",
                  "conftest", "-c", os.path.join(ROOT, "pytest.ini"),
                  "--rootdir", str(tmp_path), str(tests)],
                 check=True, env=env, cwd=ROOT, capture_output=True)
  rows = {r["test"].split("::")[1]: r
          for r in map(json.loads, log.read_text().splitlines())}
  assert set(rows) == {"test_own", "test_child", "test_idle"}
  assert rows["test_own"]["cpu"] >= 0.35
  assert rows["test_child"]["children_cpu"] >= 0.35
  assert rows["test_idle"]["cpu"] + rows["test_idle"]["children_cpu"] < 0.2
  assert rows["test_idle"]["wall"] >= 0.3


def test_reader_sums_by_test_and_file_and_reports_the_change(tmp_path):
  lines = [{"test": "tests/a.py::x", "cpu": 1.0, "children_cpu": 2.0},
           {"test": "tests/a.py::y", "cpu": 4.0, "children_cpu": 0.0},
           {"test": "tests/a.py::x", "cpu": 0.5, "children_cpu": 0.0}]
  before = tmp_path / "before.jsonl"
  before.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
  after = tmp_path / "after.jsonl"
  after.write_text(json.dumps({"test": "tests/a.py::x", "cpu": 1.0,
                               "children_cpu": 0.0}) + "\n")
  assert test_cpu.load(str(before)) == {"tests/a.py::x": 3.5,
                                        "tests/a.py::y": 4.0}
  assert test_cpu.load(str(before), by="file") == {"tests/a.py": 7.5}
  text = test_cpu.table(test_cpu.load(str(before)),
                        test_cpu.load(str(after)), top=10)
  assert "| tests/a.py::y | 4.0 | 0.0 | -4.0 |" in text
  assert "| tests/a.py::x | 3.5 | 1.0 | -2.5 |" in text
  assert "| **total** | **7.5** | **1.0** | **-6.5** |" in text
