"""Signature analysis: the only place that inspects the functions users give us.

Each function is analysed once, when it is decorated or registered: the run context
parameter is found by annotation (any name, any position, also inside `Optional`,
`X | None` and `Annotated`), else an unannotated parameter named `ctx`. For tools, the
remaining parameters become one pydantic validator and the JSON schema the model sees,
with descriptions from the docstring (Google, NumPy or Sphinx style, parsed by
`docstring_parser`) and from `Annotated[T, Field(description=...)]`. Annotations that
cannot be resolved at decoration time (forward references, `TYPE_CHECKING` imports) are
resolved on first use. Every problem found is reported in one `UserError`.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired, Union, get_args, get_origin

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic_core import to_jsonable_python
from typing_extensions import TypedDict

from .context import RunContext
from .exceptions import ContextTypeError, UserError

__all__ = ["ContextParam", "FunctionSchema", "InjectedCall", "caller_namespace"]

_EMPTY = inspect.Parameter.empty


def caller_namespace(depth: int) -> dict[str, Any] | None:
    """Return the local namespace `depth` frames up, for resolving annotations of local classes."""
    frame = sys._getframe(depth + 1)
    if frame.f_code.co_name == "<module>":
        return None  # module level: the function's globals already hold everything
    return dict(frame.f_locals)


@dataclass(frozen=True, slots=True)
class ContextParam:
    """The injected context parameter of a function."""

    name: str
    """The parameter's name."""
    cls: type[Any]
    """What the context must be an instance of: the annotated `RunContext` class, a
    runtime-checkable `Protocol`, or `RunContext` when the annotation promises nothing more."""

    def check(self, ctx: Any, owner: str) -> None:
        """Raise `ContextTypeError` when `ctx` is not an instance of `cls`."""
        if not isinstance(ctx, self.cls):
            raise ContextTypeError(
                f"{owner} needs an instance of {self.cls.__qualname__} for its parameter {self.name!r}, but "
                f"the run's context is an instance of {type(ctx).__qualname__}; pass an instance of "
                f"{self.cls.__qualname__} (or of a subclass) as context=."
            )


def _unwrap(hint: Any) -> Any:
    """Strip `Annotated`, `NewType` and generic parameters (`Tenant[int]` -> `Tenant`)."""
    while True:
        if get_origin(hint) is Annotated:
            hint = get_args(hint)[0]
        elif isinstance(hint, typing.NewType):
            hint = hint.__supertype__
        elif isinstance(origin := get_origin(hint), type) and (issubclass(origin, RunContext) or _is_protocol(origin)):
            hint = origin
        else:
            return hint


def _is_protocol(hint: Any) -> bool:
    return isinstance(hint, type) and bool(getattr(hint, "_is_protocol", False))


def _context_class(hint: Any, where: str) -> type[Any] | None:
    """Return the class a context parameter annotated with `hint` requires; `None` when `hint`
    is not a context annotation.

    Context annotations: a `RunContext` subclass (also generic, `Tenant[int]`, or a
    `NewType` of one), optionally inside `Annotated` and `X | None`.
    """
    hint = _unwrap(hint)
    if get_origin(hint) in (Union, types.UnionType):
        rest = [m for m in get_args(hint) if m is not type(None)]
        contexts = [m for m in rest if _context_class(m, where) is not None]
        if not contexts:
            return None
        if len(rest) > 1:
            raise UserError(
                f"{where} is annotated with a union of a run context and other types; annotate it "
                "with one RunContext class, optionally `| None`."
            )
        return _context_class(rest[0], where)  # the one member, a context annotation
    if isinstance(hint, type) and issubclass(hint, RunContext):
        return hint
    return None


def _structural_class(hint: Any) -> type[Any] | None:
    """For a parameter named `ctx`: the class its annotation asks the context to be, when the
    annotation promises no `RunContext` class (`Any`, `object`, a `Protocol` the application
    describes its context with, each optionally `| None`); `None` for any other annotation.

    A `@runtime_checkable` protocol is checked with `isinstance`; any other promises nothing
    more than a `RunContext`.
    """
    hint = _unwrap(hint)
    if get_origin(hint) in (Union, types.UnionType):
        rest = [m for m in get_args(hint) if m is not type(None)]
        if len(rest) != 1:
            return None
        hint = _unwrap(rest[0])
    if hint is Any or hint is object:
        return RunContext
    if _is_protocol(hint):
        return hint if getattr(hint, "_is_runtime_protocol", False) else RunContext
    return None


class FunctionSchema:
    """What cogent knows about one user function: its context parameter and arguments.

    Args:
        func: The function (sync or async; a bound method is fine).
        owner: How errors name the function, e.g. ``"Tool 'lookup'"``.
        localns: Extra names for resolving string annotations (the defining scope's locals).
        with_arguments: Whether to build the argument validator and JSON schema (tools only).

    Raises:
        UserError: If the signature cannot work: none Python can inspect (a builtin such
            as `int`), two context parameters, `*args` or `**kwargs`, positional-only
            parameters (tools), or an annotation that cannot be resolved once resolution
            is attempted.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        owner: str,
        localns: dict[str, Any] | None = None,
        with_arguments: bool = False,
    ) -> None:
        self.func = func
        self.owner = owner
        self.is_async = inspect.iscoroutinefunction(inspect.unwrap(func)) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )
        try:
            self.signature = inspect.signature(func)
        except (ValueError, TypeError) as exc:  # builtins such as `int` have no inspectable signature
            raise UserError(
                f"{owner} has no signature Python can inspect ({exc}); wrap it in a function (def or lambda) "
                "whose parameters are named."
            ) from None
        self._localns = localns
        self._with_arguments = with_arguments
        self._resolved = False
        self._context: ContextParam | None = None
        self._params: tuple[str, ...] = ()
        self._adapter: TypeAdapter[Any] | None = None
        self._json_schema: dict[str, Any] = {}
        self.description = ""
        self._check_kinds()
        with contextlib.suppress(NameError):  # an annotation names something not defined yet:
            self._resolve()  # resolved on first use instead

    def _check_kinds(self) -> None:
        problems = []
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                problems.append(f"parameter {p.name!r} is variadic (*args/**kwargs); give it a name and a type")
            elif p.kind is p.POSITIONAL_ONLY and self._with_arguments:
                problems.append(f"parameter {p.name!r} is positional-only; remove the '/' from the signature")
        if problems:
            raise UserError(f"{self.owner} cannot be used: " + "; ".join(problems) + ".")

    def _hints(self) -> dict[str, Any]:
        func = self.func
        if not (inspect.isroutine(func) or inspect.isclass(func)):
            func = getattr(type(func), "__call__", func)  # noqa: B004 - a callable object: its __call__'s annotations
        try:
            return typing.get_type_hints(func, localns=self._localns, include_extras=True)
        except NameError:
            raise
        except Exception as exc:  # e.g. TypeError from a malformed annotation
            raise UserError(f"{self.owner} has an annotation that cannot be evaluated: {exc}.") from exc

    def _resolve(self) -> None:
        hints = self._hints()
        contexts: list[ContextParam] = []
        params: list[str] = []
        for p in self.signature.parameters.values():
            found = self._context_parameter(p, hints.get(p.name, _EMPTY))
            if found is not None:
                contexts.append(found)
            else:
                params.append(p.name)
        problems: list[str] = []
        if params[:1] == ["self"] and next(iter(self.signature.parameters)) == "self":
            problems.append(
                "its first parameter is 'self': it is a method of a class, not bound to an instance; "
                "decorate a function, or pass the bound method (tool(instance.method))"
            )
        if len(contexts) > 1:
            names = ", ".join(repr(c.name) for c in contexts)
            problems.append(f"it has {len(contexts)} run context parameters ({names}); keep exactly one")
        if problems:
            raise UserError(f"{self.owner} cannot be used: " + "; ".join(problems) + ".")
        self._context = contexts[0] if contexts else None
        self._params = tuple(params)
        if self._with_arguments:
            self._build_validator(hints)
        self._resolved = True

    def _context_parameter(self, p: inspect.Parameter, hint: Any) -> ContextParam | None:
        """Return the parameter as the context parameter, or `None` if it is a model argument.

        The rule (docs/tools.md "The context parameter"): an annotation naming a context
        class (see `_context_class`); else a parameter named `ctx` that is unannotated or
        annotated `Any`, `object` or a `Protocol` (see `_structural_class`); else a parameter
        whose default is a context instance (its default is never published to the model).
        """
        where = f"Parameter {p.name!r} of {self.owner}"
        found = _context_class(hint, where) if hint is not _EMPTY else None
        if found is not None:
            return ContextParam(p.name, found)
        if p.name == "ctx":
            cls = RunContext if hint is _EMPTY else _structural_class(hint)
            if cls is not None:
                return ContextParam(p.name, cls)
        if isinstance(p.default, RunContext) and (hint is _EMPTY or _unwrap(hint) in (Any, object)):
            return ContextParam(p.name, RunContext)
        if isinstance(p.default, RunContext):
            raise UserError(
                f"{where} has a run context instance as its default but is annotated {hint!r}; annotate it "
                "with the context class so it is injected (a context is never a model argument)."
            )
        return None

    def _ensure_resolved(self) -> None:
        if self._resolved:
            return
        try:
            self._resolve()
        except NameError as exc:
            raise UserError(
                f"{self.owner} has a type annotation that cannot be resolved: "
                f"{self._unresolvable_parameter()}{exc}. Import the name at module level (not only under "
                "TYPE_CHECKING) or define it before the first run."
            ) from exc

    def _unresolvable_parameter(self) -> str:
        globalns = getattr(inspect.unwrap(self.func), "__globals__", {})
        for p in self.signature.parameters.values():
            if isinstance(p.annotation, str):
                try:
                    eval(p.annotation, globalns, self._localns or {})  # noqa: S307 - annotations only
                except Exception:
                    return f"parameter {p.name!r}: "
        return ""

    def _build_validator(self, hints: dict[str, Any]) -> None:
        import docstring_parser  # here, not at module level: `import cogent` stays fast

        doc = docstring_parser.parse(inspect.getdoc(self.func) or "")
        # Docstrings wrap lines; the model should read each description as one paragraph.
        described = {p.arg_name: " ".join(p.description.split()) for p in doc.params if p.description}
        fields: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        for name in self._params:
            p = self.signature.parameters[name]
            hint = hints.get(name, Any)
            if name in described:
                hint = Annotated[hint, Field(description=described[name])]
            if p.default is _EMPTY:
                fields[name] = hint
            else:
                fields[name] = NotRequired[hint]
                defaults[name] = p.default
        name = getattr(self.func, "__name__", type(self.func).__name__)
        arguments = TypedDict(f"{name}_arguments", fields)  # type: ignore[misc]
        arguments.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
        try:
            self._adapter = TypeAdapter(arguments)
            schema = self._adapter.json_schema()
        except Exception as exc:
            hint = ""
            if "ctx" in self._params:
                hint = (
                    " Its parameter 'ctx' is annotated with a type that is not a RunContext subclass, so it is "
                    "treated as a model argument; annotate it with RunContext (or a subclass) to have it injected."
                )
            raise UserError(f"{self.owner} has parameters pydantic cannot validate: {exc}.{hint}") from exc
        schema.pop("title", None)
        for name, default in defaults.items():
            try:
                schema["properties"][name]["default"] = to_jsonable_python(default)
            except Exception:  # noqa: S112 - a default without a JSON form is simply not shown
                continue
        self._json_schema = schema
        self.description = (doc.description or "").strip()

    @property
    def context(self) -> ContextParam | None:
        """The injected context parameter, or `None` if the function takes none."""
        if not self._resolved:  # read on every tool call: skip the method call once resolved
            self._ensure_resolved()
        return self._context

    @property
    def parameters(self) -> tuple[str, ...]:
        """The names of the parameters that are not the context, in order."""
        self._ensure_resolved()
        return self._params

    @property
    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments (tools only)."""
        self._ensure_resolved()
        return self._json_schema

    @property
    def docstring_description(self) -> str:
        """The docstring without its parameter sections (tools only)."""
        self._ensure_resolved()
        return self.description

    @property
    def validate_json(self) -> Callable[[str], dict[str, Any]]:
        """pydantic's own validator for JSON arguments (tools only), to call once per tool call."""
        self._ensure_resolved()
        assert self._adapter is not None
        validate: Callable[[str], dict[str, Any]] = self._adapter.validator.validate_json
        return validate

    def validate(self, arguments: str | bytes | dict[str, Any]) -> dict[str, Any]:
        """Validate a model's arguments (JSON text or a dict) into keyword arguments.

        Raises:
            pydantic.ValidationError: If the arguments do not match the signature.
        """
        if not self._resolved:
            self._ensure_resolved()
        assert self._adapter is not None
        validator = self._adapter.validator  # skips TypeAdapter's per-call option handling
        if isinstance(arguments, dict):
            result: dict[str, Any] = validator.validate_python(arguments)
        else:
            result = validator.validate_json(arguments or "{}")
        return result


class InjectedCall:
    """A user callable the framework calls with fixed positional values plus the context.

    Used for interceptor functions and methods, approval handlers and instructions
    callables: the values are passed to the non-context parameters in order, the
    context to the context parameter.

    Args:
        func: The callable.
        owner: How errors name it.
        arity: How many non-context parameters the framework passes.
        localns: Extra names for resolving string annotations.

    Raises:
        UserError: If the callable does not take exactly `arity` non-context parameters.
    """

    __slots__ = ("_names", "_positional", "context", "func", "is_async", "owner")

    def __init__(self, func: Callable[..., Any], *, owner: str, arity: int, localns: dict[str, Any] | None = None):
        schema = FunctionSchema(func, owner=owner, localns=localns)
        self.func = func
        self.owner = owner
        self.is_async = schema.is_async
        self.context = schema.context
        self._names = schema.parameters
        if len(self._names) != arity:
            raise UserError(
                f"{owner} must take {arity} parameter(s) besides the run context, but takes "
                f"{len(self._names)} ({', '.join(self._names) or 'none'}); fix its signature."
            )
        # Interceptors run on every phase: a positional call (values, then the context) is
        # much cheaper than building keyword arguments, when the signature allows it.
        params = list(schema.signature.parameters.values())
        order = [*self._names, *([self.context.name] if self.context else [])]
        self._positional = [p.name for p in params] == order and all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params
        )

    def invoke(self, ctx: RunContext | None, *args: Any) -> Any:
        """Call the function with `args` and the context; return what it returns (for an async
        function, the awaitable to await: see `is_async`).

        Raises:
            ContextTypeError: If `ctx` is not an instance of the annotated context class.
        """
        context = self.context
        if context is not None and ctx is not None and not isinstance(ctx, context.cls):
            context.check(ctx, self.owner)
        if self._positional:
            return self.func(*args) if context is None else self.func(*args, ctx)
        kwargs = dict(zip(self._names, args, strict=True))
        if context is not None:
            kwargs[context.name] = ctx
        return self.func(**kwargs)

    async def __call__(self, ctx: RunContext | None, *args: Any) -> Any:
        """Call the function with `args` and the context; await it when it is async."""
        result = self.invoke(ctx, *args)
        if self.is_async:
            result = await result
        return result
