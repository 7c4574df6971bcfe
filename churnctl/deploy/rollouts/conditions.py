"""Argo's successCondition / failureCondition expressions, evaluated safely.

Argo evaluates them with the expr language (github.com/antonmedv/expr) over `result` (a float
for a scalar, a list of floats for a vector) and the helpers asInt, asFloat, isNaN, isInf and
len. The subset churnctl's templates and the usual Prometheus examples use (comparisons,
&& || !, and or not, arithmetic, indexing, those calls) is translated to a Python expression
and walked node by node: nothing but these nodes is ever evaluated.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from typing import Any

_FUNCTIONS: dict[str, Any] = {
    "len": len,
    "isNaN": lambda x: isinstance(x, float) and math.isnan(x),
    "isInf": lambda x: isinstance(x, float) and math.isinf(x),
    "asInt": lambda x: int(float(x)),
    "asFloat": float,
}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Mod: operator.mod}
# expr's boolean operators in Python spelling; `!` only when it is not part of `!=`.
_TOKENS = [(re.compile(r"&&"), " and "), (re.compile(r"\|\|"), " or "),
           (re.compile(r"!(?!=)"), " not "), (re.compile(r"\btrue\b"), "True"),
           (re.compile(r"\bfalse\b"), "False"), (re.compile(r"\bnil\b"), "None")]


class ConditionError(ValueError):
    """The condition cannot be evaluated (bad syntax, an index out of range, a wrong type)."""


def _python(condition: str) -> ast.Expression:
    text = condition
    for pattern, replacement in _TOKENS:
        text = pattern.sub(replacement, text)
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"cannot parse condition {condition!r}: {exc.msg}") from None


def _eval(node: ast.AST, result: Any) -> Any:
    match node:
        case ast.Expression(body=body):
            return _eval(body, result)
        case ast.Constant(value=value) if isinstance(value, int | float | bool | str | None):
            return value
        case ast.Name(id="result"):
            return result
        case ast.BoolOp(op=ast.And(), values=values):
            return all(_eval(v, result) for v in values)  # short-circuits, as expr does
        case ast.BoolOp(op=ast.Or(), values=values):
            return any(_eval(v, result) for v in values)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, result)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, result)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            current = _eval(left, result)
            for op, right in zip(ops, comparators, strict=True):
                value = _eval(right, result)
                if not _COMPARE[type(op)](current, value):
                    return False
                current = value
            return True
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            return _BINARY[type(op)](_eval(left, result), _eval(right, result))
        case ast.Subscript(value=value, slice=index):
            return _eval(value, result)[_eval(index, result)]
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            return _FUNCTIONS[name](*(_eval(a, result) for a in args))
    raise ConditionError(f"unsupported expression: {ast.unparse(node)}")


def evaluate_condition(condition: str, result: Any) -> bool:
    """The condition's value for `result`; ConditionError when it cannot be evaluated."""
    try:
        value = _eval(_python(condition), result)
    except ConditionError:
        raise
    except (IndexError, TypeError, KeyError, ZeroDivisionError) as exc:
        raise ConditionError(f"{condition!r} with result {result!r}: {exc}") from None
    if not isinstance(value, bool):
        raise ConditionError(f"{condition!r}: expected bool, but got {type(value).__name__}")
    return value


def measurement_phase(result: Any, success: str | None, failure: str | None) -> str:
    """evaluate.EvaluateResult of Argo Rollouts: Successful | Failed | Inconclusive."""
    ok = evaluate_condition(success, result) if success else False
    failed = evaluate_condition(failure, result) if failure else False
    if not success and not failure:
        return "Successful"
    if success and not failure:
        failed = not ok
    elif failure and not success:
        ok = not failed
    if failed:
        return "Failed"
    if not ok:
        return "Inconclusive"
    return "Successful"
