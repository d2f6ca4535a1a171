#!/usr/bin/env python3
"""Declared and imported dependencies agree, target by target (docs/architecture.md).

SwiftPM builds a target that imports a module it reaches only through another dependency, and keeps a
declared dependency nobody imports: both let the graph in Package.swift drift from the code. This reads
Package.swift's targets and every Swift file's imports and fails (exit 1) on either, naming target and module.
"""
import os
import re
import sys

# The package to check: the repository's own, or a nested one named as the argument (Benchmarks, Fuzz).
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", *sys.argv[1:2])
# The toolchain's and the platform's modules: never declared.
SYSTEM = {
    "Glibc", "Foundation", "FoundationEssentials", "FoundationNetworking", "Synchronization", "Testing", "Dispatch",
    "XCTest", "_Concurrency", "Darwin", "Musl", "os", "Observation", "RegexBuilder", "_StringProcessing",
}


def targets(package):
    """(name, kind, dependencies, path) for every target, from Package.swift's text."""
    found = []
    for match in re.finditer(r'\.(target|executableTarget|testTarget|systemLibrary)\(\s*name:\s*"([^"]+)"', package):
        kind, name = match.group(1), match.group(2)
        body = package[match.end():]
        # The call's own arguments: up to its closing parenthesis at depth zero.
        depth, end = 1, 0
        for index, char in enumerate(body):
            depth += char == "("
            depth -= char == ")"
            if depth == 0:
                end = index
                break
        arguments = body[:end]
        dependencies = set()
        listed = re.search(r"dependencies:\s*\[(.*?)\]\s*(,|$)", arguments, re.S)
        if listed:
            dependencies = names(listed.group(1))
        path = re.search(r'path:\s*"([^"]+)"', arguments)
        found.append((name, kind, dependencies, path.group(1) if path else None))
    # testTarget("Name", [deps]) is the package's helper: it adds TestSupport.
    for match in re.finditer(r'(?<![.\w])testTarget\(\s*"([^"]+)",\s*\[', package):
        depth, end = 1, match.end()
        while depth and end < len(package):
            depth += package[end] == "["
            depth -= package[end] == "]"
            end += 1
        found.append((match.group(1), "testTarget", names(package[match.end():end - 1]) | {"TestSupport"}, None))
    return found


def names(text):
    """The modules a dependency list names: targets by name, products by their name (not their package's)."""
    products = set(re.findall(r'\.product\(name:\s*"([^"]+)"', text))
    return products | set(re.findall(r'"([^"]+)"', re.sub(r"\.product\([^)]*\)", "", text)))


def imports(directory):
    modules = set()
    for base, _, files in os.walk(directory):
        for file in files:
            if not file.endswith(".swift"):
                continue
            with open(os.path.join(base, file), encoding="utf-8") as handle:
                quoted = False
                for line in handle:
                    # Multi-line string literals (Python and shell scripts the tests run) hold no imports.
                    code = line.split("//", 1)[0] if not quoted else line
                    if code.count('"""') % 2 == 1:
                        quoted = not quoted
                        continue
                    if quoted:
                        continue
                    match = re.match(r"\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:public\s+|internal\s+|package\s+|private\s+|fileprivate\s+)?"
                                     r"import\s+(?:(?:struct|class|enum|func|protocol|var|let|typealias)\s+)?"
                                     r"([A-Za-z_][A-Za-z0-9_]*)", line)
                    if match:
                        modules.add(match.group(1))
    return modules


def main():
    with open(os.path.join(ROOT, "Package.swift"), encoding="utf-8") as handle:
        package = handle.read()
    problems = []
    found = targets(package)
    # An executable is a dependency so that it is built, never imported.
    executables = {name for name, kind, _, _ in found if kind == "executableTarget"}
    for name, kind, declared, path in found:
        if kind == "systemLibrary":
            continue
        directory = os.path.join(ROOT, path or ("Tests/" + name if kind == "testTarget" else "Sources/" + name))
        if not os.path.isdir(directory):
            problems.append(f"{name}: its directory {directory} does not exist")
            continue
        used = imports(directory) - SYSTEM - {name}
        for module in sorted(used - declared):
            problems.append(f"{name} imports {module} without declaring it in Package.swift")
        # Test targets may declare a dependency for the module under test and reach it through @testable only;
        # TestSupport is added to every test target by the helper.
        for module in sorted(declared - used - {"TestSupport"} - executables):
            problems.append(f"{name} declares {module} in Package.swift and imports it nowhere")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} disagreement(s) between Package.swift and the imports: fix the one that is wrong.")
        return 1
    checked = sum(kind != "systemLibrary" for _, kind, _, _ in found)
    print(f"{os.path.normpath(ROOT)}/Package.swift: the dependencies of its {checked} targets and their imports agree.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
