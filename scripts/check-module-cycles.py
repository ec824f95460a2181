#!/usr/bin/env python3
"""Fails when modules of one crate import each other in a cycle.

The design rule (docs/architecture.md): within a crate, modules form a DAG, so every module
can be read knowing only the ones below it. This reads `crate::a::b` and `super::x` paths
(in `use` lines and inline) from every .rs file under each crate's src/, maps each to the
top-level module it names, and reports every strongly connected group of top-level
modules; then the same one level down, among the files of each module directory.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)::\{([^;]*?)\};", re.S)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def module_of(src, path):
    """`run/attach.rs` -> ['run', 'attach']; `run/mod.rs` -> ['run']; lib.rs -> []."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def targets(text, here):
    """Module paths (lists) that `text`, in module `here`, refers to."""
    text = strip_comments(text)
    out = []
    for kind, group in GROUP.findall(text):
        for item in re.split(r"[,\s{}]+", group):
            if item and item != "self":
                out.append(resolve(kind, ["", *item.split("::")], here))
    for kind, rest in PATH.findall(text):
        out.append(resolve(kind, rest.split("::"), here))
    return [t for t in out if t]


def resolve(kind, parts, here):
    names = [p for p in parts if p]
    if kind == "crate":
        return names
    base = here[:-1] if here else []
    while names and names[0] == "super":
        names, base = names[1:], base[:-1]
    return base + names


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def check_crate(src):
    files = []
    for dirpath, _, names in os.walk(src):
        files += [os.path.join(dirpath, n) for n in names if n.endswith(".rs")]
    modules = {tuple(module_of(src, f)) for f in files}
    # level 0: top-level modules; level 1: files inside each module directory
    problems = []
    for depth in (1, 2):
        graph = {}
        for f in files:
            here = module_of(src, f)
            if len(here) < depth:
                continue
            node = tuple(here[:depth])
            for t in targets(open(f, encoding="utf-8").read(), here):
                # the longest known module that prefixes the path
                while t and tuple(t) not in modules:
                    t = t[:-1]
                if len(t) < depth or tuple(t[: depth - 1]) != node[: depth - 1]:
                    continue
                target = tuple(t[:depth])
                if target != node:
                    graph.setdefault(node, set()).add(target)
        for group in sccs(graph):
            problems.append(" <-> ".join("::".join(m) for m in group))
    return problems


def main():
    failed = False
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isfile(os.path.join(ROOT, crate, "Cargo.toml")) or not os.path.isdir(src):
            continue
        for problem in check_crate(src):
            failed = True
            print(f"module cycle in {crate}: {problem}", file=sys.stderr)
    if failed:
        print("break each cycle: move what both sides need into a module below both", file=sys.stderr)
        return 1
    print("no module cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
