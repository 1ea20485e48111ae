"""Help text answered from a cache, without importing typer (ADR 0038, issue 17 point 5).

``remediate audit --help`` cost about 200 ms, of which importing typer and click is about
115 ms. The first time a help text is printed, remediate.cli renders it with typer as before and
stores exactly what was printed here; later the same request is answered from that copy, in the
time it takes Python to start.

An entry is used only when everything typer's rendering depends on is the same:

* the request is a bare help request: command words only, then one ``-h`` or ``--help``, and
  nothing else (``audit --org --help`` gives ``--org`` the value ``--help``: not a help request);
* remediate's version, this interpreter and the installed package's directory;
* the terminal width (``shutil.get_terminal_size``, as click reads it), whether stdout is a
  terminal and its encoding, and the environment variables that can change colour, width,
  locale or completion (any ``REMEDIATE_*`` or ``_REMEDIATE_COMPLETE*`` among them);
* the size and modification time of every remediate, typer and click source file loaded when
  the entry was made (an edited CLI, or an upgraded typer, invalidates it).

Anything else, or any doubt (no entry, an unreadable or malformed one, a changed file, output
with escape sequences), falls back to typer. This module imports only the standard library.
"""

from __future__ import annotations

import os
import sys

#: First line of an entry; a new format changes it, so old entries are simply not used.
MAGIC = "remediate-help-cache 2"
HELP_FLAGS = ("-h", "--help")
#: Environment variables that click, typer or the terminal may read while rendering help.
_ENV = ("COLUMNS", "LINES", "TERM", "NO_COLOR", "FORCE_COLOR", "CLICOLOR", "CLICOLOR_FORCE",
        "LANG", "LC_ALL", "LC_CTYPE", "PYTHONIOENCODING", "PYTHONUTF8", "TYPER_USE_RICH",
        "_TYPER_STANDARD_TRACEBACK", "_TYPER_FORCE_DISABLE_TERMINAL")
#: Packages whose loaded source files make up an entry's fingerprint.
_PACKAGES = ("remediate", "typer", "click")


def help_request(argv: list[str]) -> tuple[str, ...] | None:
    """The command words of a bare help request (``[]`` for ``remediate --help``), else None."""
    if not argv or argv[-1] not in HELP_FLAGS:
        return None
    words = argv[:-1]
    if any(not w or w.startswith("-") or not w.replace("-", "").replace("_", "").isalnum()
           for w in words):
        return None
    return tuple(words)


def cache_dir() -> str:
    """``help`` under remediate's cache directory (remediate.dirs, light enough to ask here)."""
    from remediate import dirs

    return os.path.join(dirs.cache_dir(), "help")


def _key(argv: list[str]) -> str:
    """Everything the rendering depends on, as a SHA-256 digest: the environment it covers may
    hold secrets (``REMEDIATE_*`` variables), and the entry on disk keeps only the digest."""
    import hashlib

    from remediate import __version__

    stdout = sys.stdout
    try:
        tty = stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    parts = [__version__, sys.executable, sys.version,
             os.path.dirname(os.path.abspath(__file__)), *argv,
             _terminal(), f"tty={tty}", f"encoding={getattr(stdout, 'encoding', None)}"]
    parts.extend(f"{name}={os.environ.get(name)}" for name in _ENV)
    parts.extend(sorted(f"{k}={v}" for k, v in os.environ.items()
                        if k.startswith(("REMEDIATE_", "_REMEDIATE_"))))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _file_name(argv: list[str], key: str) -> str:
    words = "-".join(w for w in argv[:-1]) or "remediate"
    return f"{words}.{key[:16]}"


def _terminal() -> str:
    """What click's help width is computed from (shutil.get_terminal_size: COLUMNS, which is in
    the key too, else the size of the terminal on stdout), without importing shutil."""
    try:
        size = os.get_terminal_size(sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return "no terminal"
    return f"{size.columns}x{size.lines}"


def _completing() -> bool:
    return any(k.startswith("_REMEDIATE_COMPLETE") or k.startswith("_TYPER_COMPLETE")
               for k in os.environ)


def lookup(argv: list[str], directory: str | None = None) -> str | None:
    """The cached help text for ``argv``, or None when there is none that can be trusted."""
    if help_request(argv) is None or _completing():
        return None
    try:
        key = _key(argv)
        path = os.path.join(directory or cache_dir(), _file_name(argv, key))
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            text = file.read()
        header, sep, output = text.partition("\n\n")
        lines = header.split("\n")
        if not sep or lines[:2] != [MAGIC, key] or len(lines) < 3:
            return None
        for line in lines[2:]:
            size, mtime, source = line.split(" ", 2)
            info = os.stat(source)
            if info.st_size != int(size) or info.st_mtime_ns != int(mtime):
                return None
        return output
    except (OSError, ValueError, UnicodeError):
        return None


def _sources() -> list[str]:
    out = []
    for name, module in list(sys.modules.items()):
        if name.split(".", 1)[0] in _PACKAGES:
            source = getattr(module, "__file__", None)
            if source:
                out.append(os.path.abspath(source))
    return sorted(set(out))


def store(argv: list[str], output: str, directory: str | None = None) -> bool:
    """Keep ``output``, what typer printed for the help request ``argv``, for next time.

    Called by remediate.cli after a real render, for a command path it resolved. Output with an
    escape sequence (colour) is not kept. Failing to write is not an error: help was printed."""
    if help_request(argv) is None or _completing() or "\x1b" in output or not output:
        return False
    try:
        key = _key(argv)
        lines = [MAGIC, key]
        for source in _sources():
            info = os.stat(source)
            if "\n" in source:
                return False
            lines.append(f"{info.st_size} {info.st_mtime_ns} {source}")
        folder = directory or cache_dir()
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, _file_name(argv, key))
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="utf-8", errors="surrogateescape") as file:
            file.write("\n".join(lines) + "\n\n" + output)
        os.replace(partial, path)
        return True
    except (OSError, ValueError, UnicodeError):
        return False


def main() -> None:
    """The ``remediate`` script: a cached help text when one applies, else the whole CLI."""
    text = lookup(sys.argv[1:])
    if text is not None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        else:
            sys.exit(0)
    from remediate.cli import main as cli_main

    cli_main()
