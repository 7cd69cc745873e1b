"""Resolves a merge conflict in tests/symbols.txt: the union of both sides,
sorted (the list is append-only, so a union is always the right answer)."""
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "tests/symbols.txt"
lines = [l for l in open(path).read().splitlines() if not l.startswith(("<<<<<<<", "=======", ">>>>>>>"))]
header = [l for l in lines if l.startswith("#")][:1]
body = sorted({l for l in lines if l and not l.startswith("#")})
open(path, "w").write("\n".join(header + body) + "\n")
