"""A HistGradientBoostingClassifier's trees as generated Python: one nested `if` per split.

One row through 300 trees is ~2,000 splits. sklearn's predict spends ~1 ms per call on
OpenMP dispatch (far more on a busy machine), a list-walking loop ~0.3-0.5 ms, and straight-line
comparisons ~40 µs. The source is built only from the fitted model's numbers (feature indices,
thresholds, category codes, leaf values), each printed with repr() so it reads back exactly; the
rules are those of sklearn's `_predict_one_from_raw_data`, so results match bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from churnctl.serving.encoders import CompileError

MAX_DEPTH = 80  # Python's parser allows 100 levels of indentation


def _bits(words: np.ndarray) -> list[int]:
    """The members of one sklearn bitset row (8 x uint32 = categories 0..255)."""
    octets = np.ascontiguousarray(words, dtype="<u4").view(np.uint8)
    return np.flatnonzero(np.unpackbits(octets, bitorder="little")).tolist()


def _members(codes: list[int]) -> str:
    # A literal set of constants compiles to one frozenset constant: `in` is a hash look-up.
    return "{" + ", ".join(repr(float(c)) for c in codes) + "}" if codes else "()"


class _TreeSource:
    def __init__(self, number: int, predictor: Any, known: Any, feature_map: Any,
                 seen: dict[int, list[int]]) -> None:
        self.number = number
        self.nodes = predictor.nodes
        self.raw_left = predictor.raw_left_cat_bitsets
        self.known = known
        self.feature_map = feature_map
        self.seen = seen  # known category codes per categorical feature, shared by all trees
        self.lines: list[str] = []

    def leaf(self, index: int) -> str:
        """The literal a leaf adds (tests corrupt one here to see verification refuse it)."""
        return repr(float(self.nodes[index]["value"]))

    def known_codes(self, feature: int) -> list[int]:
        if feature not in self.seen:
            self.seen[feature] = _bits(self.known[self.feature_map[feature]])
        return self.seen[feature]

    def emit(self, index: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise CompileError(f"a tree is deeper than {MAX_DEPTH} levels")
        node = self.nodes[index]
        pad = "    " * (depth + 1)
        if node["is_leaf"]:
            self.lines.append(f"{pad}t += {self.leaf(index)}")
            return
        x = f"x{int(node['feature_idx'])}"
        missing_left = bool(node["missing_go_to_left"])
        if node["is_categorical"]:
            # Left set -> left; other known categories -> right; NaN, negative or unseen codes
            # -> the side missing values take.
            left = _bits(self.raw_left[node["bitset_idx"]])
            if missing_left:
                chosen = set(left)
                right = [c for c in self.known_codes(int(node["feature_idx"])) if c not in chosen]
                condition = f"not ({x} in {_members(right)})"
            else:
                condition = f"{x} in {_members(left)}"
        else:
            threshold = float(node["num_threshold"])
            condition = f"{x} <= {threshold!r}" + (f" or {x} != {x}" if missing_left else "")
        self.lines.append(f"{pad}if {condition}:")
        self.emit(int(node["left"]), depth + 1)
        self.lines.append(f"{pad}else:")
        self.emit(int(node["right"]), depth + 1)


def compile_trees(estimator: Any) -> Callable[[list[float]], float]:
    """A function from one row (as the estimator sees it) to its raw score."""
    predictors = [per_iteration[0] for per_iteration in estimator._predictors]
    if not predictors:
        raise CompileError("gradient boosting has no trees")
    known, feature_map = None, None
    if any(p.nodes["is_categorical"].any() for p in predictors):
        known, feature_map = estimator._bin_mapper.make_known_categories_bitsets()
    # One function: the inputs unpacked into locals once, then each tree in turn adds its leaf
    # (no call per tree: ~15% faster). sklearn adds the trees to the baseline in order, and the
    # same order gives the same rounding.
    baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
    names = [f"x{i}" for i in range(int(estimator.n_features_in_))]
    lines = ["def raw(x):", f"    {', '.join(names)}, = x", f"    t = {baseline!r}"]
    seen: dict[int, list[int]] = {}
    for number, predictor in enumerate(predictors):
        tree = _TreeSource(number, predictor, known, feature_map, seen)
        tree.emit(0, 0)
        lines += tree.lines
    lines.append("    return t")
    namespace: dict[str, Any] = {"inf": math.inf, "__builtins__": {}}
    code = compile("\n".join(lines), "<churnctl-trees>", "exec")
    # The source holds only numbers taken from the fitted model and names defined above.
    exec(code, namespace)
    return namespace["raw"]


class TreesHead:
    """A binary HistGradientBoostingClassifier: generated code for a few rows, sklearn's own
    predict (compiled, multi-threaded) for many."""

    kind = "trees"
    max_rows = 16  # above this sklearn's predict is faster

    def __init__(self, estimator: Any) -> None:
        if getattr(estimator, "n_trees_per_iteration_", 0) != 1:
            raise CompileError("gradient boosting is not binary")
        self._read_preprocessor(getattr(estimator, "_preprocessor", None))
        self.raw_row = compile_trees(estimator)
        self.estimator = estimator

    def _read_preprocessor(self, pre: Any) -> None:
        """With categorical features, sklearn re-encodes them itself before the trees.

        Its ColumnTransformer puts the categorical columns first, each mapped by an
        OrdinalEncoder from the value it got to 0..k-1 (unseen: NaN), then the numeric ones.
        """
        self.categorical_inputs: list[int] = []
        self.numeric_inputs: list[int] | None = None  # None: no re-encoding
        self.codes: list[dict[float, float]] = []
        if pre is None:
            return
        names = [name for name, _, _ in pre.transformers_]
        if names[:2] != ["encoder", "numerical"] or pre.output_indices_["encoder"].start != 0:
            raise CompileError("unexpected gradient boosting preprocessor")
        indices = pre._transformer_to_input_indices
        self.categorical_inputs = [int(i) for i in indices["encoder"]]
        self.numeric_inputs = [int(i) for i in indices["numerical"]]
        for categories in pre.named_transformers_["encoder"].categories_:
            self.codes.append({float(c): float(i) for i, c in enumerate(categories)
                               if not np.isnan(c)})

    def _reencode(self, row: list[float]) -> list[float]:
        if self.numeric_inputs is None:
            return row
        nan = math.nan
        pairs = zip(self.codes, self.categorical_inputs, strict=True)
        categorical = [codes.get(row[i], nan) for codes, i in pairs]
        return categorical + [row[i] for i in self.numeric_inputs]

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.shape[0] > self.max_rows:
            return self.estimator.predict_proba(matrix)[:, 1]
        raw = [self.raw_row(self._reencode(row)) for row in matrix.tolist()]
        return 1.0 / (1.0 + np.exp(-np.array(raw)))
