"""The plugin manager: one per CRM, holding the built-ins, entry points and explicit plugins.

Built-in backends, notifiers and the default pipeline are plugins too, registered exactly as a
third party's would be. Entry points in the ``relcrm`` group load automatically unless the
environment variable ``RELCRM_DISABLE_PLUGIN_AUTOLOAD`` is set to a non-empty value.
"""

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pluggy

from . import hookspecs
from .exceptions import PluginError

__all__ = [
    "AUTOLOAD_ENV",
    "PluginInfo",
    "call_each",
    "collect_registrations",
    "make_plugin_manager",
    "plugin_infos",
]

AUTOLOAD_ENV = "RELCRM_DISABLE_PLUGIN_AUTOLOAD"
log = logging.getLogger("relcrm.plugins")


def make_plugin_manager(
    plugins: Iterable[object] = (), *, load_entrypoints: bool | None = None
) -> pluggy.PluginManager:
    """A new plugin manager with relcrm's hooks, the built-in plugins, the ``relcrm`` entry
    points (unless disabled) and ``plugins``; misspelled hook implementations raise
    :class:`~relcrm.PluginError`."""
    from . import _builtins

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in _builtins.BUILTIN_PLUGINS:
        pm.register(plugin, name=name)
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get(AUTOLOAD_ENV)
    if load_entrypoints:
        try:
            pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc.plugin), str(exc)) from exc
        except Exception as exc:  # a broken installed plugin: say so instead of crashing
            raise PluginError(
                "entry point",
                f"loading the {hookspecs.PROJECT_NAME!r} entry points failed: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
    for plugin in plugins:
        try:
            pm.register(plugin, name=_default_name(pm, plugin))
        except ValueError as exc:  # already registered
            raise PluginError(_name(pm, plugin), str(exc)) from exc
        except pluggy.PluginValidationError as exc:
            raise PluginError(_name(pm, plugin), str(exc)) from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(_name(pm, exc.plugin), str(exc)) from exc
    return pm


def _default_name(pm: pluggy.PluginManager, plugin: object) -> str:
    """A readable plugin name: a module's name, else the class path, made unique."""
    base = getattr(plugin, "__name__", None)
    if not isinstance(base, str):
        cls = plugin if isinstance(plugin, type) else type(plugin)
        base = f"{cls.__module__}.{cls.__qualname__}"
    name, n = base, 1
    while pm.has_plugin(name):
        n += 1
        name = f"{base}-{n}"
    return name


def _name(pm: pluggy.PluginManager, plugin: object) -> str:
    return pm.get_name(plugin) or getattr(plugin, "__name__", None) or type(plugin).__name__


def collect_registrations(
    pm: pluggy.PluginManager,
    hook_name: str,
    what: str,
    key: Callable[[Any], str] | None = None,
) -> dict[str, tuple[str, Any]]:
    """Call a registration hook on every plugin; returns ``key -> (plugin, value)``.

    The hook's ``register`` callback takes ``(key, value)``, or just ``value`` when ``key`` says
    how to name it. A key registered twice raises :class:`~relcrm.PluginError` naming both
    plugins.
    """
    found: dict[str, tuple[str, Any]] = {}
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():  # registration order, oldest first
        plugin_name = impl.plugin_name

        def register(*args: Any, _plugin: str = plugin_name) -> None:
            if key is not None:
                (value,) = args
                name = key(value)
            else:
                name, value = args
            if not isinstance(name, str) or not name:
                raise PluginError(_plugin, f"{what} names must be non-empty strings")
            if name in found:
                raise PluginError(
                    _plugin, f"{what} {name!r} is already registered by {found[name][0]!r}"
                )
            found[name] = (_plugin, value)

        args = {"register": register} if "register" in impl.argnames else {}
        try:
            impl.function(**args)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}"
            ) from exc
    return found


def call_each(caller: pluggy.HookCaller, **kwargs: Any) -> Iterator[tuple[str, Callable[[], Any]]]:
    """Yield ``(plugin_name, call)`` for every implementation of a hook, newest first, so the
    caller decides how to isolate or combine them. Each call passes only the arguments the
    implementation declares."""
    for impl in reversed(caller.get_hookimpls()):
        args = {name: kwargs[name] for name in impl.argnames}

        def call(_f: Callable[..., Any] = impl.function, _a: dict[str, Any] = args) -> Any:
            return _f(**_a)

        yield impl.plugin_name, call


class PluginInfo:
    """A loaded plugin: its name, the hooks it implements, and its distribution if any."""

    def __init__(self, name: str, hooks: list[str], dist: str | None) -> None:
        self.name = name
        self.hooks = hooks
        self.dist = dist

    def __repr__(self) -> str:
        return f"PluginInfo(name={self.name!r}, hooks={self.hooks!r}, dist={self.dist!r})"


def plugin_infos(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with its hooks, sorted by name."""
    dists = {id(p): d for p, d in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(c.name for c in pm.get_hookcallers(plugin) or [])
        dist = dists.get(id(plugin))
        dist_name = f"{dist.project_name} {dist.version}" if dist is not None else None
        out.append(PluginInfo(name, hooks, dist_name))
    return sorted(out, key=lambda i: i.name)
