"""Where the test suite's CPU time goes, and what a change saved.

  VIDJAX_TEST_CPU_LOG=before.jsonl python -m pytest -q
  ... change something ...
  VIDJAX_TEST_CPU_LOG=after.jsonl python -m pytest -q
  python -m tools.test_cpu before.jsonl [after.jsonl] [--top=40] [--by=file]

CI runs the suite on 2 cores with 2 pytest-xdist workers, so its wall time
is about the suite's CPU seconds / 2; CPU seconds (user + sys of the worker
and of the subprocesses it waited for; tests/conftest.py writes one line per
test) move much less with other load on the machine than wall seconds (10-20%
more on a loaded 2-core CPU: compare runs made alike). With one
log: the top tests and the total. With two: both columns, the change and the
totals, sorted by the largest change.
"""
import argparse
import collections
import json
import sys


def load(path: str, by: str = "test") -> dict:
  """{test node id (or file): CPU seconds}, summed over repeated lines."""
  out = collections.defaultdict(float)
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
        key = row["test"] if by == "test" else row["test"].split("::")[0]
        out[key] += float(row["cpu"]) + float(row["children_cpu"])
      except (ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}:{number}: not a test CPU line ({e})")
  return dict(out)


def table(before: dict, after: dict | None, top: int) -> str:
  """A markdown table: the `top` rows (largest CPU, or largest change)."""
  if after is None:
    rows = sorted(before.items(), key=lambda kv: -kv[1])[:top]
    lines = ["| test | CPU-s |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in rows]
    lines.append(f"| **total ({len(before)} tests)** | "
                 f"**{sum(before.values()):.1f}** |")
    return "\n".join(lines)
  keys = set(before) | set(after)
  change = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
  rows = sorted(keys, key=lambda k: -abs(change[k]))[:top]
  lines = ["| test | before CPU-s | after CPU-s | change |",
           "|---|---:|---:|---:|"]
  lines += [f"| {k} | {before.get(k, 0.0):.1f} | {after.get(k, 0.0):.1f} | "
            f"{change[k]:+.1f} |" for k in rows]
  b, a = sum(before.values()), sum(after.values())
  lines.append(f"| **total** | **{b:.1f}** | **{a:.1f}** | **{a - b:+.1f}** |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("before")
  parser.add_argument("after", nargs="?")
  parser.add_argument("--top", type=int, default=40)
  parser.add_argument("--by", choices=("test", "file"), default="test")
  args = parser.parse_args(argv)
  before = load(args.before, args.by)
  after = load(args.after, args.by) if args.after else None
  print(table(before, after, args.top))


if __name__ == "__main__":
  sys.exit(main())
