"""Mutation testing for matrixnms: apply one small edit to the library at a time and see whether tests fail.

    python tools/mutate.py --list                  # the sampled mutants, nothing run
    python tools/mutate.py --max 40 --seed 0       # run 40 sampled mutants (about 15-20 min on 2 cores)
    python tools/mutate.py --only 'stable' --max 0 # every mutant whose id or edit matches the pattern
    python tools/mutate.py --jobs 2 --tests tests/test_ties.py   # two at a time, one test module for all

Why not mutmut: mutmut 3 mutates through "trampolines" (each function replaced by a dispatcher to mutated
copies) and leaves decorated functions alone (boxed/mutmut#336, #387): here every kernel is decorated
(``@njit`` in the Numba backends, ``@register`` in ``_generic*``), so most of the code would never be
mutated, and a trampoline inside an ``@njit`` function could not be compiled anyway. Its per-mutant runs of
the whole suite would not fit a 2-core machine either. This driver instead edits the source text, one
mutant at a time, in a private copy of the repository, and runs only the test modules that cover the file.

How it runs. The working tree (``git ls-files --cached --others --exclude-standard``: tracked and untracked,
not ignored) is copied once per job into a temporary directory. For each mutant the file is rewritten, the
mapped tests run there (``python -m pytest -x -q -p no:cacheprovider``, ``HYPOTHESIS_PROFILE=fast``, the
copy as cwd so its package shadows any installed one), and the original file is restored with its original
modification time. Each copy has its own ``NUMBA_CACHE_DIR``, warmed once before the first mutant, so Numba
recompiles only the mutated module (and that module again when it is restored: the cache is keyed by the
file's path and modification time). A mutant is *killed* when the tests fail, *survived* when they pass, and
*timeout* when they give no result within ``--timeout`` (240 s; an infinite loop, or a busy machine: rerun
those with ``--only ID --timeout 900``), not counted as killed. The score is reported separately for
behaviour and validation mutants.

Sites are found from source patterns (tokens and the AST), never line numbers, in ``matrixnms/**/*.py``
except ``bench/`` (and ``bench.py``), ``cli.py``, ``scenes.py``, ``_transcription.py``, ``__init__.py`` and
backends that cannot run here (``_torch`` without torch, ``_cupy`` without a CUDA device), so they survive
files moving. Strings, docstrings and comments are never edited; module-level tunables (names ending in ``_BYTES``, ``_PAIRS``,
``_PAIR``, ``EXACT_F32``) are skipped: a different memory budget is not a behaviour.
A mutant that does not compile is dropped.

Operators (behaviour unless marked; a mutant is "validation" when it is a validation operator or sits in the
condition of an ``if`` whose body raises, or in a ``check_*`` / ``_check_*`` / ``is_*`` helper):

    cmp        one comparison flipped: < <=, <= <, > >=, >= >, == !=, != ==
    stable     ``stable=True`` -> ``stable=False``; ``kind="mergesort"`` / ``kind="stable"`` ->
               ``kind="quicksort"`` or removed (NumPy's default, quicksort). Removing ``stable=True`` from an
               array-API ``argsort`` is not generated: the standard's default is ``stable=True`` (equivalent)
    arith      one binary operator swapped: + -, - +, * /, / *
    slice      a slice's upper bound ``s:e`` -> ``s:(e) + 1``
    plus_one   ``+ 1`` / ``- 1`` removed
    accum      ``x = x + y`` -> ``x = y`` (also ``-``, ``*``, ``|``, ``&``); ``x += y`` / ``x |= y`` -> ``x = y``
    const      a numeric literal changed: 0 -> 1, 1 -> 0, n -> n + 1, 0.0 -> 1.0, x -> 2x
    minmax     min <-> max, minimum <-> maximum, argmin <-> argmax, amin <-> amax
    not        a ``not`` removed (``not in`` -> ``in``, ``is not`` -> ``is``)
    andor      ``and`` <-> ``or``
    raise      (validation) ``raise ValueError/TypeError/ImportError(...)`` -> ``pass``
    invert     (validation) the condition of an ``if`` whose body raises negated: ``if c:`` -> ``if not (c):``

Sampling: all sites are sorted (file, offset, operator) and ``--max N`` are drawn with ``random.Random(seed)``,
a quarter of them (or all there are) validation mutants; ``--max 0`` runs every site.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "matrixnms"
EXCLUDE_PARTS = {"bench"}
EXCLUDE_NAMES = {"bench.py", "cli.py", "scenes.py", "_transcription.py", "__init__.py"}
OPTIONAL_BACKENDS = {"_cupy.py": "cupy", "_torch.py": "torch"}
TUNABLE = re.compile(r"^[A-Z_0-9]*(_BYTES|_PAIRS|_PAIR|EXACT_F32)\b")
VALIDATION_FUNCTION = re.compile(r"^_?(check|is)_|^_positive_int$")

# Test modules per mutated file (by file stem), fast and likely killers first; anything else runs tests/.
TESTS = {
    "nms": ["test_matrix_nms.py", "test_ties.py", "test_chunking.py", "test_errors.py", "test_rejections.py"],
    "masks": ["test_masks.py", "test_chunking.py", "test_errors.py", "test_rejections.py"],
    "_generic": ["test_matrix_nms.py", "test_masks.py", "test_chunking.py", "test_ties.py"],
    "_generic_baselines": ["test_greedy_nms.py", "test_ties.py"],
    "baselines": ["test_greedy_nms.py", "test_ties.py", "test_rejections.py"],
    "_numba_greedy": ["test_greedy_nms.py", "test_ties.py"],
    "multiclass": ["test_multiclass.py", "test_rejections.py", "test_ties.py"],
    "_generic_multiclass": ["test_multiclass.py", "test_ties.py"],
    "_numba_multiclass": ["test_multiclass.py", "test_ties.py"],
    "_numba": ["test_matrix_nms.py", "test_masks.py", "test_chunking.py", "test_kernels.py", "test_ties.py"],
    "_numba_runtime": ["test_matrix_nms.py", "test_chunking.py", "test_multiclass.py"],
    "_validate": ["test_rejections.py", "test_errors.py", "test_greedy_nms.py", "test_multiclass.py",
                  "test_matrix_nms.py"],
    "export": ["test_rejections.py", "test_export.py"],
    "_dispatch": ["test_dispatch_paths.py", "test_errors.py", "test_matrix_nms.py"],
    "_torch": ["test_matrix_nms.py", "test_masks.py", "test_kernels.py"],
    "_config": ["test_chunking.py"],
}
OPERATORS = ("cmp", "stable", "arith", "slice", "plus_one", "accum", "const", "minmax", "not", "andor", "raise",
             "invert")
VALIDATION_OPERATORS = {"raise", "invert"}


@dataclass
class Mutant:
    path: str  # relative to the repository root
    start: int  # character offsets of the replaced text
    end: int
    new: str
    op: str
    line: int
    old: str
    kind: str = "behaviour"  # or "validation"

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.op}:{self.start}"

    def describe(self) -> str:
        return f"{self.id} [{self.kind}] {self.old.strip()!r} -> {self.new.strip()!r}"


# ---------------------------------------------------------------------------------------------- discovery


def source_files(root: Path) -> list[Path]:
    out = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root)
        if EXCLUDE_PARTS & set(rel.parts[:-1]) or path.name in EXCLUDE_NAMES or "__pycache__" in rel.parts:
            continue
        package = OPTIONAL_BACKENDS.get(path.name)
        if package and not _usable(package):
            continue
        out.append(path)
    return out


def _usable(package: str) -> bool:
    """Whether a backend's kernels can run here: installed, and for CuPy a CUDA device."""
    if find_spec(package) is None:
        return False
    if package != "cupy":
        return True
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver or no device
        return False


class Source:
    """One file's text, tokens, and the spans that classify mutants."""

    def __init__(self, root: Path, path: Path):
        self.rel = str(path.relative_to(root))
        self.text = path.read_text()
        self.lines = self.text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.tokens = list(tokenize.generate_tokens(io.StringIO(self.text).readline))
        self.tree = ast.parse(self.text)
        self.noncode = bytearray(len(self.text) + 1)  # 1 inside strings and comments
        for tok in self.tokens:
            if tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type == getattr(tokenize, "FSTRING_START", -1):
                self.noncode[self.offset(*tok.start):self.offset(*tok.end)] = b"\x01" * (
                    self.offset(*tok.end) - self.offset(*tok.start))
        self.validation_spans: list[tuple[int, int]] = []
        self.tunable_spans: list[tuple[int, int]] = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.If) and any(isinstance(n, ast.Raise) for n in node.body):
                self.validation_spans.append(self.node_span(node.test))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and VALIDATION_FUNCTION.search(node.name):
                self.validation_spans.append(self.node_span(node))
        for node in self.tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and TUNABLE.search(t.id) for t in targets):
                    self.tunable_spans.append(self.node_span(node))

    def offset(self, row: int, col: int) -> int:
        return self.starts[row - 1] + col

    def ast_offset(self, row: int, col_bytes: int) -> int:
        line = self.lines[row - 1] if row - 1 < len(self.lines) else ""
        return self.starts[row - 1] + len(line.encode()[:col_bytes].decode(errors="ignore"))

    def node_span(self, node: ast.AST) -> tuple[int, int]:
        return self.ast_offset(node.lineno, node.col_offset), self.ast_offset(node.end_lineno, node.end_col_offset)

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    def is_code(self, offset: int) -> bool:
        return not self.noncode[offset]

    def tunable(self, offset: int) -> bool:
        return any(s <= offset < e for s, e in self.tunable_spans)

    def mutant(self, start: int, end: int, new: str, op: str) -> Mutant:
        kind = "validation" if op in VALIDATION_OPERATORS or any(
            s <= start < e for s, e in self.validation_spans) else "behaviour"
        return Mutant(self.rel, start, end, new, op, self.line_of(start), self.text[start:end], kind)


BINARY_BEFORE = {")", "]"}
KEYWORDS_BEFORE_UNARY = {"return", "in", "and", "or", "not", "if", "else", "lambda", "yield", "is", "elif",
                         "while", "for", "assert", "await", "del"}
SWAPS = {
    "cmp": {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="},
    "arith": {"+": "-", "-": "+", "*": "/", "/": "*"},
    "minmax": {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum", "argmin": "argmax",
               "argmax": "argmin", "amin": "amax", "amax": "amin"},
    "andor": {"and": "or", "or": "and"},
}


def token_mutants(src: Source) -> list[Mutant]:
    out = []
    significant = [t for t in src.tokens if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT,
                                                           tokenize.INDENT, tokenize.DEDENT)]
    brackets: list[str] = []
    for k, tok in enumerate(significant):
        start, end = src.offset(*tok.start), src.offset(*tok.end)
        prev = significant[k - 1] if k else None
        nxt = significant[k + 1] if k + 1 < len(significant) else None
        binary = prev is not None and (prev.type == tokenize.NUMBER or prev.string in BINARY_BEFORE or (
            prev.type == tokenize.NAME and prev.string not in KEYWORDS_BEFORE_UNARY) or prev.type == tokenize.STRING)
        if tok.type == tokenize.OP:
            if tok.string in "([{":
                brackets.append(tok.string)
            elif tok.string in ")]}" and brackets:
                brackets.pop()
            if tok.string in SWAPS["cmp"]:
                out.append(src.mutant(start, end, SWAPS["cmp"][tok.string], "cmp"))
            elif tok.string in SWAPS["arith"] and binary:
                out.append(src.mutant(start, end, SWAPS["arith"][tok.string], "arith"))
            elif tok.string == ":" and brackets and brackets[-1] == "[":
                # the upper bound: tokens up to the next , ] or : at this depth
                depth, j = 0, k + 1
                while j < len(significant):
                    s = significant[j].string
                    if depth == 0 and s in (",", "]", ":"):
                        break
                    depth += s in "([{" and significant[j].type == tokenize.OP
                    depth -= s in ")]}" and significant[j].type == tokenize.OP
                    j += 1
                if j > k + 1:
                    a, b = src.offset(*significant[k + 1].start), src.offset(*significant[j - 1].end)
                    out.append(src.mutant(a, b, f"({src.text[a:b]}) + 1", "slice"))
        elif tok.type == tokenize.NAME:
            if tok.string in SWAPS["minmax"] and nxt is not None and nxt.string == "(":
                out.append(src.mutant(start, end, SWAPS["minmax"][tok.string], "minmax"))
            elif tok.string in SWAPS["andor"]:
                out.append(src.mutant(start, end, SWAPS["andor"][tok.string], "andor"))
            elif tok.string == "not" and nxt is not None:
                out.append(src.mutant(start, src.offset(*nxt.start), "", "not"))
        elif tok.type == tokenize.NUMBER:
            text = tok.string
            if re.fullmatch(r"\d+", text):
                value = int(text)
                new = "1" if value == 0 else "0" if value == 1 else str(value + 1)
            elif re.fullmatch(r"\d*\.\d*(e[+-]?\d+)?", text):
                value = float(text)
                new = "1.0" if value == 0 else repr(2 * value)
            else:
                continue
            out.append(src.mutant(start, end, new, "const"))
    return out


PATTERNS = [
    ("stable", re.compile(r"stable=True"), lambda m: "stable=False"),
    ("stable", re.compile(r"kind=\"(mergesort|stable)\""), lambda m: 'kind="quicksort"'),
    ("stable", re.compile(r",\s*kind=\"(mergesort|stable)\""), lambda m: ""),
    ("plus_one", re.compile(r"\s*[+-]\s*1\b(?![.\w])"), lambda m: ""),
]
ACCUMULATE = re.compile(r"^[ \t]*([\w.]+(?:\[[^\]\n]*\])?) = (\1 [-+*|&] )", re.M)
AUGMENTED = re.compile(r"^[ \t]*[\w.]+(?:\[[^\]\n]*\])? ([-+*|&]=) ", re.M)


def pattern_mutants(src: Source) -> list[Mutant]:
    out = []
    for op, pattern, replace in PATTERNS:
        for m in pattern.finditer(src.text):
            if src.is_code(m.start()):
                out.append(src.mutant(m.start(), m.end(), replace(m), op))
    for m in ACCUMULATE.finditer(src.text):
        if src.is_code(m.start(2)):
            out.append(src.mutant(m.start(2), m.end(2), "", "accum"))
    for m in AUGMENTED.finditer(src.text):
        if src.is_code(m.start(1)):
            out.append(src.mutant(m.start(1), m.end(1), "=", "accum"))
    return out


def ast_mutants(src: Source) -> list[Mutant]:
    out = []
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name) \
                and node.exc.func.id in ("ValueError", "TypeError", "ImportError"):
            start, end = src.node_span(node)
            out.append(src.mutant(start, end, "pass", "raise"))
        elif isinstance(node, ast.If) and any(isinstance(n, ast.Raise) for n in node.body):
            start, end = src.node_span(node.test)
            out.append(src.mutant(start, end, f"not ({src.text[start:end]})", "invert"))
    return out


def apply(text: str, mutant: Mutant) -> str:
    return text[:mutant.start] + mutant.new + text[mutant.end:]


def discover(root: Path) -> list[Mutant]:
    mutants = []
    for path in source_files(root):
        src = Source(root, path)
        seen = set()
        for mutant in token_mutants(src) + pattern_mutants(src) + ast_mutants(src):
            key = (mutant.start, mutant.end, mutant.new)
            if key in seen or mutant.old == mutant.new or src.tunable(mutant.start):
                continue
            seen.add(key)
            try:
                compile(apply(src.text, mutant), mutant.path, "exec")
            except SyntaxError:
                continue
            mutants.append(mutant)
    mutants.sort(key=lambda m: (m.path, m.start, m.op, m.new))
    return mutants


def sample(mutants: list[Mutant], n: int, seed: int) -> list[Mutant]:
    if n <= 0 or n >= len(mutants):
        return mutants
    rng = random.Random(seed)
    validation = [m for m in mutants if m.kind == "validation"]
    behaviour = [m for m in mutants if m.kind == "behaviour"]
    n_val = min(len(validation), max(1, n // 4))
    chosen = rng.sample(validation, n_val) + rng.sample(behaviour, min(len(behaviour), n - n_val))
    return sorted(chosen, key=lambda m: (m.path, m.start, m.op))


# ---------------------------------------------------------------------------------------------- running


def tests_for(mutant: Mutant, override: list[str] | None, root: Path) -> list[str]:
    if override:
        return override
    names = TESTS.get(Path(mutant.path).stem)
    if names is None:
        return ["tests"]
    return [f"tests/{name}" for name in names if (root / "tests" / name).exists()]


def worktree_files(root: Path) -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.split("\n")
        return [f for f in listed if f and (root / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(root)) for d in (PACKAGE, "tests") for p in (root / d).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts] + ["pyproject.toml", "README.md"]


def make_copy(root: Path, into: Path) -> None:
    for rel in worktree_files(root):
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


WARM_UP = """
import numpy as np
import matrixnms as m
s = np.array([0.9, 0.8, 0.7]); k = np.zeros((3, 4, 4), bool); k[:, :2, :2] = True
b = np.array([[0.0, 0, 2, 2], [1, 1, 3, 3], [0, 0, 2, 2]]); lab = np.array([0, 1, 0])
for name in ("numba", "generic"):
    try:
        m.matrix_nms(s, k, labels=lab, backend=name); m.matrix_nms(s, boxes=b, labels=lab, backend=name)
        m.mask_iou(k, backend=name); m.masks_to_boxes(k, backend=name); m.nms(b, s, 0.5, backend=name)
        m.batched_nms(b, s, lab, 0.5, backend=name); m.mask_nms(k, s, 0.5, backend=name)
        m.soft_nms(s, k, backend=name); m.soft_nms(s, boxes=b, backend=name)
        m.multiclass_matrix_nms(b[None], np.stack([s, s])[None], score_threshold=0.1, post_threshold=0.1,
                                nms_top_k=3, keep_top_k=3, backend=name)
    except (ImportError, ValueError):
        pass
"""


def environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HYPOTHESIS_PROFILE="fast", NUMBA_CACHE_DIR=str(copy / ".numba_cache"), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    return env


def run_mutant(mutant: Mutant, copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    path = copy / mutant.path
    original = path.read_text()
    stat = path.stat()
    path.write_text(apply(original, mutant))
    began = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=copy, env=environment(copy), capture_output=True, text=True, timeout=timeout)
        status = "survived" if proc.returncode == 0 else "killed"
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        detail = lines[0] if lines else (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode not in (0, 1):
            detail = f"pytest exit {proc.returncode}: {detail}"
    except subprocess.TimeoutExpired:
        status, detail = "timeout", f"no result within {timeout:.0f} s"
    finally:
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the Numba cache stays valid
    return status, time.monotonic() - began, detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the selected mutants and exit")
    parser.add_argument("--only", help="regular expression: keep mutants whose id or edit matches")
    parser.add_argument("--max", type=int, default=40, help="sample this many mutants (0: all), default 40")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed, default 0")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once, each in its own copy")
    parser.add_argument("--tests", nargs="+", help="test files or node ids for every mutant (default: by file)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant; no result by then: 'timeout'")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    mutants = discover(ROOT)
    if args.only:
        pattern = re.compile(args.only)
        mutants = [m for m in mutants if pattern.search(m.describe())]
    total_sites = len(mutants)
    mutants = sample(mutants, args.max, args.seed)
    if args.list:
        for m in mutants:
            print(m.describe())
        kinds = {k: sum(m.kind == k for m in mutants) for k in ("behaviour", "validation")}
        print(f"{len(mutants)} of {total_sites} mutants: {kinds['behaviour']} behaviour, "
              f"{kinds['validation']} validation")
        return 0
    if not mutants:
        print("no mutants selected")
        return 1

    base = Path(tempfile.mkdtemp(prefix="matrixnms-mutate-"))
    copies: Queue = Queue()
    print(f"copying the working tree into {args.jobs} cop{'y' if args.jobs == 1 else 'ies'} under {base}; warming "
          "the Numba cache", flush=True)
    for j in range(args.jobs):
        copy = base / f"job{j}"
        make_copy(ROOT, copy)
        subprocess.run([sys.executable, "-c", WARM_UP], cwd=copy, env=environment(copy), capture_output=True)
        copies.put(copy)

    results: list[dict] = []
    counter = iter(range(1, len(mutants) + 1))
    began = time.monotonic()

    def one(mutant: Mutant) -> None:
        copy = copies.get()
        try:
            status, seconds, detail = run_mutant(mutant, copy, tests_for(mutant, args.tests, copy), args.timeout)
        finally:
            copies.put(copy)
        results.append({**asdict(mutant), "id": mutant.id, "status": status, "seconds": seconds, "detail": detail})
        print(f"[{next(counter)}/{len(mutants)}] {status.upper():8} {seconds:6.1f}s  {mutant.describe()}"
              + (f"\n    {detail}" if status != "survived" else ""), flush=True)

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(one, mutants))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"\n{len(results)} mutants in {time.monotonic() - began:.0f} s (seed {args.seed}, {total_sites} sites)")
    for kind in ("behaviour", "validation"):
        group = [r for r in results if r["kind"] == kind]
        if group:
            killed = sum(r["status"] == "killed" for r in group)
            timeouts = sum(r["status"] == "timeout" for r in group)
            print(f"  {kind:10}: {killed}/{len(group)} killed ({100 * killed / len(group):.1f} %)"
                  + (f", {timeouts} timed out (rerun them with a larger --timeout)" if timeouts else ""))
    survivors = sorted((r for r in results if r["status"] != "killed"), key=lambda r: r["id"])
    for r in survivors:
        print(f"  {r['status'].upper()} {r['id']} [{r['kind']}] {r['old'].strip()!r} -> {r['new'].strip()!r}")
    if args.json:
        args.json.write_text(json.dumps(sorted(results, key=lambda r: r["id"]), indent=1))
    return 0 if not survivors else 2


if __name__ == "__main__":
    sys.exit(main())
