"""Finds the app's `Eval` subclass by reading its source (no import on the build machine), so a
wrong app fails in milliseconds with one line, before componentize-py starts."""

from __future__ import annotations

import ast


class AppError(Exception):
    """A mistake in the user's app, said in one line."""


def find_eval(source: str, filename: str) -> str:
    """The name of the one top-level class in `source` that derives from `proctor_eval.Eval`
    and that no other class there derives from. Raises `AppError` otherwise."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        where = f"{filename}:{e.lineno}" + (f":{e.offset}" if e.offset else "")
        raise AppError(f"{where}: syntax error: {e.msg}") from None

    eval_names: set[str] = set()  # names bound to proctor_eval.Eval
    sdk_names: set[str] = set()  # names bound to the proctor_eval module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "proctor_eval" and node.level == 0:
            for alias in node.names:
                if alias.name in ("Eval", "*"):
                    eval_names.add(alias.asname or "Eval")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "proctor_eval":
                    sdk_names.add(alias.asname or "proctor_eval")

    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    evals: dict[str, ast.ClassDef] = {}
    # Repeat until no class is added, so that a subclass of a local subclass counts too.
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls.name not in evals and any(_is_eval(b, eval_names, sdk_names, evals) for b in cls.bases):
                evals[cls.name] = cls
                changed = True

    bases_in_use = {
        b.id for cls in evals.values() for b in cls.bases if isinstance(b, ast.Name) and b.id in evals
    }
    leaves = [cls for name, cls in evals.items() if name not in bases_in_use]
    if not leaves:
        raise AppError(
            f"{filename}: no subclass of proctor_eval.Eval (define one: `class MyEval(Eval): ...`)"
        )
    if len(leaves) > 1:
        found = ", ".join(f"{c.name} (line {c.lineno})" for c in sorted(leaves, key=lambda c: c.lineno))
        raise AppError(f"{filename}: {len(leaves)} subclasses of proctor_eval.Eval: {found}; define exactly one")
    return leaves[0].name


def _is_eval(base: ast.expr, eval_names: set[str], sdk_names: set[str], evals: dict) -> bool:
    if isinstance(base, ast.Name):
        return base.id in eval_names or base.id in evals
    return (
        isinstance(base, ast.Attribute)
        and base.attr == "Eval"
        and isinstance(base.value, ast.Name)
        and base.value.id in sdk_names
    )
