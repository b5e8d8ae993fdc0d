#!/usr/bin/env python3
"""Lists public declarations without a doc comment (`///` or `//` on the line above, attributes
skipped) in Sources/, Agents/ and Environments/.

    python3 tools/doc_coverage.py            # counts per file
    python3 tools/doc_coverage.py --list     # every undocumented declaration

Members that implement a protocol requirement documented on the protocol (reset, step, plan,
observationSpace, …) are counted separately: DocC shows the protocol's documentation for them.
A development tool; nothing in the package needs it.
"""
import collections
import glob
import re
import sys

CONFORMANCE = {
    "reset", "step", "observationSpace", "actionSpace", "name", "snapshot", "restore", "contains", "sample",
    "flatten", "unflatten", "erase", "element", "descriptor", "act", "save", "load", "decide", "values", "learn",
    "rolloutSettings", "observationWidth", "actionWidth", "kind", "plan", "isDeterministic", "callAsFunction",
    "namedParameters", "encode", "classAttention", "answerLogits", "lastTokenAttention", "fastVAnswerLogits",
    "textEmbeddings", "flops", "fastVFLOPs", "visualTokenCount", "gridSize", "tokenWidth", "vocabularySize",
    "flatDimension", "distribution", "value", "logProbability", "entropy", "mode", "make", "task", "word",
    "codeWidth", "version", "close", "summary", "description",
}
DECLARATION = re.compile(r"(public |open )(static |final |mutating |override |private\(set\) |nonisolated\(unsafe\) )*"
                         r"(func|var|let|struct|enum|class|protocol|init|case|typealias|subscript)\b")
NAME = re.compile(r"(func|var|let|case|init|struct|enum|class|protocol|typealias|subscript)\s*([A-Za-z_]+)?")


def main() -> None:
    files = sorted(f for d in ["Sources", "Agents", "Environments"] for f in glob.glob(d + "/**/*.swift", recursive=True))
    total, missing, conformance = 0, [], 0
    for path in files:
        lines = open(path).read().split("\n")
        for i, line in enumerate(lines):
            text = line.strip()
            if not DECLARATION.match(text) or "init(from decoder" in text:
                continue
            total += 1
            j = i - 1
            while j >= 0 and lines[j].strip().startswith("@"):
                j -= 1
            if lines[j].strip().startswith("//"):
                continue
            match = NAME.search(text)
            if match and match.group(2) in CONFORMANCE:
                conformance += 1
                continue
            missing.append(f"{path}:{i + 1}: {text[:110]}")
    print(f"{total} public declarations; {len(missing)} without a doc comment "
          f"(and {conformance} protocol-requirement implementations documented on their protocol)")
    if "--list" in sys.argv:
        print("\n".join(missing))
    else:
        for path, count in collections.Counter(m.split(":")[0] for m in missing).most_common():
            print(f"{count:5d}  {path}")


if __name__ == "__main__":
    main()
