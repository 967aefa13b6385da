"""Loading the configuration: YAML, ``${ENV_VAR}`` interpolation, ``*_file`` secrets, then the models'
validation and the checks that need other modules (matchers, recipient templates, user templates
rendered once on a sample). It sits above rendering in the package's layers (tests/test_layout.py): the
models in config/ are a leaf every part imports; loading a file uses the parts that check it.

Every error names the path of the bad key (``receivers[0].targets[1].app``) and why, so that the
process refuses to start with a message an operator can act on.  Secrets come from ``${ENV_VAR}``
interpolation or ``*_file`` keys and are held as `Secret`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from alertmanager_wecom.config.models import Config, ConfigError
from alertmanager_wecom.ingest.matchers import MatcherError, parse_matcher
from alertmanager_wecom.ingest.routing import recipient_template_problems
from alertmanager_wecom.rendering.renderer import compile_target_templates

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Keys whose value may instead be read from a file named by ``<key>_file`` (Kubernetes secrets).
SECRET_KEYS = frozenset({"secret", "key", "token", "password", "bearer_token", "encoding_aes_key", "ack_key"})
# Mappings of secrets whose values may come from files: ``headers_file: {Authorization: /run/secrets/x}``
# (tracing's headers, as Alertmanager's). Each value is read from its file, beside ``headers`` if any.
SECRET_MAPPINGS = frozenset({"headers"})


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _interpolate(node: Any, loc: tuple[str | int, ...], errors: list[str]) -> Any:
    """Replace ``${VAR}`` with environment values and ``<name>_file`` keys with file contents."""
    if isinstance(node, str):

        def env(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value is None:
                errors.append(f"{_path(loc)}: environment variable {match.group(1)} is not set")
                return ""
            return value

        return _ENV_REF.sub(env, node)
    if isinstance(node, list):
        return [_interpolate(item, (*loc, i), errors) for i, item in enumerate(node)]
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        from_files: dict[str, dict[str, str]] = {}
        for key, value in node.items():
            key = str(key)
            name = key.removesuffix("_file")
            if key.endswith("_file") and name in SECRET_MAPPINGS and isinstance(value, dict):
                from_files[name] = _read_files(value, (*loc, key), errors)
                continue
            # In a tls_config (Alertmanager's shape), key_file is the path a TLS library opens, not a secret.
            paths = loc[-1:] == ("tls_config",)
            if key.endswith("_file") and name in SECRET_KEYS and isinstance(value, str) and not paths:
                if name in node:
                    errors.append(f"{_path((*loc, key))}: set either {name} or {key}, not both")
                    continue
                try:
                    out[name] = Path(value).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    errors.append(f"{_path((*loc, key))}: cannot read {value}: {exc.strerror}")
                continue
            out[key] = _interpolate(value, (*loc, key), errors)
        for name, values in from_files.items():
            given = out.setdefault(name, {})
            if not isinstance(given, dict):
                continue  # the model says what is wrong with it
            for both in sorted(set(given) & set(values)):
                errors.append(f"{_path((*loc, name))}: {both} is set here and in {name}_file: set one")
            given.update(values)
        return out
    return node


def _read_files(files: dict[Any, Any], loc: tuple[str | int, ...], errors: list[str]) -> dict[str, str]:
    """``{name: path}`` → ``{name: the file's content}`` (stripped, as the other ``*_file`` keys)."""
    out: dict[str, str] = {}
    for name, path in files.items():
        if not isinstance(path, str):
            errors.append(f"{_path((*loc, str(name)))}: must be the path of a file")
            continue
        try:
            out[str(name)] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            errors.append(f"{_path((*loc, str(name)))}: cannot read {path}: {exc.strerror}")
    return out


def _check_matchers(config: Config) -> None:
    problems = []
    for i, receiver in enumerate(config.receivers):
        for j, target in enumerate(receiver.targets):
            for matcher in target.match:
                try:
                    parse_matcher(matcher)
                except MatcherError as exc:
                    problems.append(f"receivers[{i}].targets[{j}]: match: {exc}")
                    break
    if problems:
        raise ConfigError("\n".join(problems))


def parse_config(raw: Any, base_dir: Path | None = None) -> Config:
    """Validate already-parsed YAML; raise `ConfigError` listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("(top level): the config must be a mapping of keys to values")
    errors: list[str] = []
    data = _interpolate(raw, (), errors)
    if errors:
        raise ConfigError("\n".join(errors))
    if base_dir is not None:
        data["base_dir"] = base_dir
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            if message.startswith(("receivers[", "apps.")):
                lines.append(message)
            else:
                lines.append(f"{_path(err['loc'])}: {message}")
        raise ConfigError("\n".join(lines)) from None
    _check_matchers(config)
    problems = recipient_template_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))
    # Templates are compiled now so that a broken template stops the start, with its line number; the
    # config keeps them, so the renderer uses what was checked (not the file as it is later).
    compile_target_templates(config)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context_mark = getattr(exc, "context_mark", None)
        context = getattr(exc, "context", None)
        if context and context_mark:
            problem += f" ({context} started at line {context_mark.line + 1})"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_config(raw, base_dir=path.parent.resolve())
